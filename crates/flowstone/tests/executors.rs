//! Executors through the API: TaskAsync status/cancel/concurrency, Sync's kept results, Serial's
//! steps and pauses, custom executors, capability checks, and the job's serialized form.

mod common;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use flowstone::runtime::Runtime;
use flowstone::store::MaterializationStatus;
use flowstone::{
    Asset, Capabilities, Error, ErrorKind, ExecContext, Executor, FlowStone, Job, JobStatus,
    Output, Partition, Run, Step, Strategy, SyncExecutor, TaskAsyncExecutor,
};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};

use common::wait::wait_until;
use common::{RunLog, all_records, day, logged, records};

fn constant(name: &str, value: u32) -> Asset {
    Asset::new(name).execute(move |_ctx| async move { Ok::<_, Error>(value) })
}

// ---------------------------------------------------------------------------------------------
// TaskAsync
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_status_and_cancel_work_from_another_task() {
    let started = Arc::new(Notify::new());
    let finished_work = Arc::new(AtomicBool::new(false));
    let (s, f) = (Arc::clone(&started), Arc::clone(&finished_work));
    let fs = FlowStone::builder()
        .asset(Asset::new("long").execute(move |_ctx| {
            let (started, finished_work) = (Arc::clone(&s), Arc::clone(&f));
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(10)).await;
                // Never reached: the cancel drops the future at the await above.
                finished_work.store(true, Ordering::SeqCst);
                Ok::<_, Error>(1u8)
            }
        }))
        .build()
        .unwrap();

    let job = fs
        .schedule("long", Run::unpartitioned().executor(Strategy::Async))
        .await
        .unwrap();
    assert_eq!(job.executor, "async");
    started.notified().await;

    // Status and cancel from a task that did not schedule the job.
    let (fs2, job2) = (fs.clone(), job.clone());
    let after_cancel = tokio::spawn(async move {
        let before = fs2.job_status(&job2).await.unwrap();
        assert!(matches!(before, JobStatus::Running), "{before}");
        fs2.cancel_job(&job2).await.unwrap();
        fs2.job_status(&job2).await.unwrap()
    })
    .await
    .unwrap();
    assert!(
        matches!(after_cancel, JobStatus::Cancelled),
        "{after_cancel}"
    );
    // And from this task too.
    let status = fs.job_status(&job).await.unwrap();
    assert!(matches!(status, JobStatus::Cancelled), "{status}");

    // Give a stray continuation every chance to run; it must not.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!finished_work.load(Ordering::SeqCst));

    let recs = records(&fs, "long").await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].status, MaterializationStatus::Cancelled);
    assert_eq!(recs[0].executor, "async");
    // Cancelling a finished job is a no-op that leaves it as it was.
    fs.cancel_job(&job).await.unwrap();
    assert!(matches!(
        fs.job_status(&job).await.unwrap(),
        JobStatus::Cancelled
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_cancels_a_job_still_waiting_for_a_slot() {
    let release = Arc::new(Notify::new());
    let log = RunLog::default();
    let (r, l) = (Arc::clone(&release), log.clone());
    let fs = FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(1))
        .asset(Asset::new("gate").execute(move |ctx| {
            let (release, log) = (Arc::clone(&r), l.clone());
            async move {
                log.push(format!("start {}", ctx.partition()));
                release.notified().await;
                Ok::<_, Error>(0u8)
            }
        }))
        .build()
        .unwrap();
    let one = fs
        .schedule("gate", Run::partition(1).executor(Strategy::Async))
        .await
        .unwrap();
    let two = fs
        .schedule("gate", Run::partition(2).executor(Strategy::Async))
        .await
        .unwrap();
    wait_until("one job runs", || log.entries().len() == 1).await;
    // Tasks race for the single slot: whichever started holds it, the other waits.
    let started = log.entries()[0].clone();
    let (first, second) = if started == "start i:1" {
        (one, two)
    } else {
        (two, one)
    };
    let status = fs.job_status(&second).await.unwrap();
    assert!(
        matches!(status, JobStatus::Pending { attempt: 1, .. }),
        "{status}"
    );

    fs.cancel_job(&second).await.unwrap();
    assert!(matches!(
        fs.job_status(&second).await.unwrap(),
        JobStatus::Cancelled
    ));
    release.notify_one();
    let mut done = false;
    for _ in 0..2_000 {
        if fs.job_status(&first).await.unwrap().is_finished() {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(done, "the first job never finished");
    assert!(matches!(
        fs.job_status(&first).await.unwrap(),
        JobStatus::Completed(_)
    ));
    // The cancelled job never started.
    assert_eq!(log.entries(), [started]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_runs_at_most_max_concurrency_at_once_and_reaches_it() {
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Semaphore::new(0));
    let (c, p, s, g) = (
        Arc::clone(&current),
        Arc::clone(&peak),
        Arc::clone(&started),
        Arc::clone(&gate),
    );
    let fs = FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(3))
        .asset(Asset::new("worker").execute(move |ctx| {
            let (current, peak, started, gate) = (
                Arc::clone(&c),
                Arc::clone(&p),
                Arc::clone(&s),
                Arc::clone(&g),
            );
            async move {
                let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                started.fetch_add(1, Ordering::SeqCst);
                // Hold the slot until the test opens the gate, so running jobs overlap.
                gate.acquire().await.unwrap().forget();
                current.fetch_sub(1, Ordering::SeqCst);
                ctx.partition().int()
            }
        }))
        .build()
        .unwrap();

    let mut jobs = Vec::new();
    for i in 0..12i64 {
        jobs.push(
            fs.schedule("worker", Run::partition(i).executor(Strategy::Async))
                .await
                .unwrap(),
        );
    }
    // Three start and block; the other nine wait for a slot.
    wait_until("three jobs run", || started.load(Ordering::SeqCst) == 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(started.load(Ordering::SeqCst), 3, "a fourth job started");
    let mut pending = 0;
    for job in &jobs {
        if matches!(fs.job_status(job).await.unwrap(), JobStatus::Pending { .. }) {
            pending += 1;
        }
    }
    assert_eq!(pending, 9);

    gate.add_permits(12);
    for job in &jobs {
        let mut status = fs.job_status(job).await.unwrap();
        for _ in 0..2_000 {
            if status.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            status = fs.job_status(job).await.unwrap();
        }
        match status {
            JobStatus::Completed(out) => {
                assert_eq!(out.value::<i64>().unwrap(), job.partition.int().unwrap())
            }
            other => panic!("job {:?} ended {other}", job.partition),
        }
    }
    assert_eq!(started.load(Ordering::SeqCst), 12);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(current.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_materialize_waits_for_the_output() {
    let fs = FlowStone::builder()
        .asset(constant("answer", 42))
        .build()
        .unwrap();
    let value: u32 = fs
        .materialize("answer", Run::unpartitioned().executor(Strategy::Async))
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(value, 42);
    assert_eq!(records(&fs, "answer").await[0].executor, "async");
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sync_schedule_keeps_the_result_for_job_status() {
    let fs = FlowStone::builder()
        .asset(constant("answer", 42))
        .asset(
            Asset::new("broken")
                .execute(|_ctx| async { Err::<u32, _>(Error::permanent("input file is empty")) }),
        )
        .build()
        .unwrap();

    let job = fs
        .schedule("answer", Run::unpartitioned().executor(Strategy::Sync))
        .await
        .unwrap();
    assert_eq!(job.executor, "sync");
    match fs.job_status(&job).await.unwrap() {
        JobStatus::Completed(out) => assert_eq!(out.value::<u32>().unwrap(), 42),
        other => panic!("expected completed, got {other}"),
    }

    let job = fs
        .schedule("broken", Run::unpartitioned().executor(Strategy::Sync))
        .await
        .unwrap();
    match fs.job_status(&job).await.unwrap() {
        JobStatus::Failed(err) => {
            assert_eq!(err.kind(), ErrorKind::ExecutionFailed);
            assert!(err.to_string().contains("input file is empty"), "{err}");
            assert!(!err.retryable());
        }
        other => panic!("expected failed, got {other}"),
    }

    // A job this executor never saw is NotFound, not a panic.
    let mut stranger = job.clone();
    stranger.id = flowstone::JobId::new();
    let err = fs.job_status(&stranger).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Serial
// ---------------------------------------------------------------------------------------------

fn chain(log: &RunLog) -> FlowStone {
    FlowStone::builder()
        .asset(logged("a", &[], log))
        .asset(logged("b", &["a"], log))
        .asset(logged("c", &["b"], log))
        .build()
        .unwrap()
}

#[tokio::test]
async fn serial_on_step_sees_before_and_after_for_each_job_in_order() {
    let log = RunLog::default();
    let fs = chain(&log);
    let steps = RunLog::default();
    let job_ids: Arc<Mutex<Vec<flowstone::JobId>>> = Arc::default();
    let (st, ids) = (steps.clone(), Arc::clone(&job_ids));
    fs.materialize(
        "c",
        Run::unpartitioned()
            .with_upstream(true)
            .executor(Strategy::Serial)
            .verbose(true)
            .on_step(move |step| match step {
                Step::Before(job) => {
                    ids.lock().unwrap().push(job.id);
                    st.push(format!("before {}", job.asset));
                }
                Step::After(job, result) => {
                    assert_eq!(ids.lock().unwrap().last(), Some(&job.id));
                    st.push(format!(
                        "after {} {}",
                        job.asset,
                        if result.is_ok() { "ok" } else { "err" }
                    ));
                }
            }),
    )
    .await
    .unwrap();
    assert_eq!(
        steps.entries(),
        [
            "before a",
            "after a ok",
            "before b",
            "after b ok",
            "before c",
            "after c ok"
        ]
    );
    assert_eq!(log.entries(), ["a", "b", "c"]);
    assert!(
        all_records(&fs)
            .await
            .iter()
            .all(|r| r.executor == "serial"),
        "every step ran on the serial executor"
    );
}

#[tokio::test(start_paused = true)]
async fn serial_pause_between_is_honoured() {
    use tokio::time::Instant;

    let log = RunLog::default();
    let fs = chain(&log);
    let pause = Duration::from_millis(500);
    let times: common::Shared<(String, Instant)> = Arc::default();
    let t = Arc::clone(&times);
    let t0 = Instant::now();
    fs.materialize(
        "c",
        Run::unpartitioned()
            .with_upstream(true)
            .executor(Strategy::Serial)
            .pause_between(pause)
            .on_step(move |step| {
                let label = match step {
                    Step::Before(job) => format!("before {}", job.asset),
                    Step::After(job, _) => format!("after {}", job.asset),
                };
                t.lock().unwrap().push((label, Instant::now()));
            }),
    )
    .await
    .unwrap();
    let times = times.lock().unwrap().clone();
    let at = |label: &str| times.iter().find(|(l, _)| l == label).unwrap().1;
    // Virtual time: each gap is the pause, and the first step does not wait for one.
    assert!(at("before a") - t0 < pause, "{times:?}");
    assert!(at("before b") - at("after a") >= pause, "{times:?}");
    assert!(at("before c") - at("after b") >= pause, "{times:?}");
    assert!(Instant::now() - t0 >= pause * 2);
    assert_eq!(log.entries(), ["a", "b", "c"]);
}

#[tokio::test]
async fn serial_schedule_keeps_the_result_for_job_status() {
    let fs = FlowStone::builder()
        .asset(constant("answer", 7))
        .build()
        .unwrap();
    let job = fs
        .schedule("answer", Run::unpartitioned().executor(Strategy::Serial))
        .await
        .unwrap();
    match fs.job_status(&job).await.unwrap() {
        JobStatus::Completed(out) => assert_eq!(out.value::<u32>().unwrap(), 7),
        other => panic!("expected completed, got {other}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Custom executors
// ---------------------------------------------------------------------------------------------

/// The seed ADR's example: at most `limit` calls per `window`, delegating to Sync.
struct RateLimited {
    inner: SyncExecutor,
    limit: usize,
    window: Duration,
    calls: Mutex<VecDeque<std::time::Instant>>,
}

impl RateLimited {
    fn new(limit: usize, window: Duration) -> Self {
        RateLimited {
            inner: SyncExecutor::new(),
            limit,
            window,
            calls: Mutex::new(VecDeque::new()),
        }
    }

    fn admit(&self, job: &Job) -> flowstone::Result<()> {
        let now = std::time::Instant::now();
        let mut calls = self.calls.lock().unwrap();
        while calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.window)
        {
            calls.pop_front();
        }
        if calls.len() >= self.limit {
            return Err(Error::failed(format!(
                "rate limit: at most {} calls per {:?}",
                self.limit, self.window
            ))
            .with_asset(&job.asset));
        }
        calls.push_back(now);
        Ok(())
    }
}

#[async_trait]
impl Executor for RateLimited {
    fn name(&self) -> &str {
        "rate_limited"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn execute(&self, job: Job, cx: ExecContext) -> flowstone::Result<Output> {
        self.admit(&job)?;
        self.inner.execute(job, cx).await
    }

    async fn schedule(&self, job: Job, cx: ExecContext) -> flowstone::Result<Job> {
        self.admit(&job)?;
        self.inner.schedule(job, cx).await
    }

    async fn status(&self, job: &Job, runtime: &Runtime) -> flowstone::Result<JobStatus> {
        self.inner.status(job, runtime).await
    }
}

/// Delegates to Sync but keeps no status: `job_status` must say Unsupported.
struct Forgetful(SyncExecutor);

#[async_trait]
impl Executor for Forgetful {
    fn name(&self) -> &str {
        "forgetful"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::of(&[flowstone::Capability::Immediate])
    }

    async fn execute(&self, job: Job, cx: ExecContext) -> flowstone::Result<Output> {
        self.0.execute(job, cx).await
    }

    async fn schedule(&self, job: Job, cx: ExecContext) -> flowstone::Result<Job> {
        self.0.execute(job.clone(), cx).await?;
        Ok(job)
    }
}

fn counted(name: &str, calls: &Arc<AtomicUsize>) -> Asset {
    let calls = Arc::clone(calls);
    Asset::new(name).execute(move |_ctx| {
        let calls = Arc::clone(&calls);
        async move { Ok::<_, Error>(calls.fetch_add(1, Ordering::SeqCst) as u32 + 1) }
    })
}

#[tokio::test]
async fn a_custom_executor_works_through_strategy_custom() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fs = FlowStone::builder()
        .asset(counted("api_pull", &calls))
        .build()
        .unwrap();
    let limiter: Arc<dyn Executor> = Arc::new(RateLimited::new(2, Duration::from_secs(3600)));

    let job = fs
        .schedule(
            "api_pull",
            Run::unpartitioned().executor(Strategy::Custom(Arc::clone(&limiter))),
        )
        .await
        .unwrap();
    assert_eq!(job.executor, "rate_limited");
    // job_status routes to the custom executor by the name in the job.
    match fs.job_status(&job).await.unwrap() {
        JobStatus::Completed(out) => assert_eq!(out.value::<u32>().unwrap(), 1),
        other => panic!("expected completed, got {other}"),
    }

    let second: u32 = fs
        .materialize(
            "api_pull",
            Run::unpartitioned().executor(Strategy::Custom(Arc::clone(&limiter))),
        )
        .await
        .unwrap()
        .value()
        .unwrap();
    assert_eq!(second, 2);

    let err = fs
        .materialize(
            "api_pull",
            Run::unpartitioned().executor(Strategy::Custom(Arc::clone(&limiter))),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rate limit"), "{err}");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the third call was refused"
    );
    let recs = records(&fs, "api_pull").await;
    assert_eq!(recs.len(), 2);
    assert!(
        recs.iter().all(|r| r.executor == "rate_limited"),
        "{recs:?}"
    );

    // A different executor under the same name is refused rather than silently swapped.
    let impostor: Arc<dyn Executor> = Arc::new(RateLimited::new(9, Duration::from_secs(1)));
    let err = fs
        .materialize(
            "api_pull",
            Run::unpartitioned().executor(Strategy::Custom(impostor)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[tokio::test]
async fn a_custom_executor_works_by_registered_name() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fs = FlowStone::builder()
        .executor(RateLimited::new(1, Duration::from_secs(3600)))
        .asset(counted("api_pull", &calls))
        .asset(counted("by_default", &calls).executor("rate_limited"))
        .build()
        .unwrap();
    let job = fs
        .schedule(
            "api_pull",
            Run::unpartitioned().executor(Strategy::named("rate_limited")),
        )
        .await
        .unwrap();
    assert_eq!(job.executor, "rate_limited");
    assert!(matches!(
        fs.job_status(&job).await.unwrap(),
        JobStatus::Completed(_)
    ));
    // The limit is shared with the asset that names the executor as its default.
    let err = fs
        .materialize("by_default", Run::unpartitioned())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rate limit"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn job_status_on_a_custom_executor_without_status_is_unsupported() {
    let fs = FlowStone::builder()
        .executor(Forgetful(SyncExecutor::new()))
        .asset(constant("answer", 1))
        .build()
        .unwrap();
    let job = fs
        .schedule(
            "answer",
            Run::unpartitioned().executor(Strategy::named("forgetful")),
        )
        .await
        .unwrap();
    let err = fs.job_status(&job).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    assert!(err.to_string().contains("forgetful"), "{err}");
    let err = fs.cancel_job(&job).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    // Its capabilities are enforced too: no timeout option.
    let err = fs
        .materialize(
            "answer",
            Run::unpartitioned()
                .executor(Strategy::named("forgetful"))
                .timeout(Duration::from_secs(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Capabilities and selection
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn scheduled_at_on_sync_is_invalid_options_and_nothing_runs() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fs = FlowStone::builder()
        .asset(counted("nightly", &calls))
        .build()
        .unwrap();
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    for strategy in [Strategy::Sync, Strategy::Auto] {
        let run = Run::unpartitioned()
            .executor(strategy)
            .scheduled_at(tomorrow);
        let err = fs.materialize("nightly", run.clone()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
        assert!(err.to_string().contains("scheduled_at"), "{err}");
        assert!(err.to_string().contains("sync"), "{err}");
        let err = fs.schedule("nightly", run).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    }
    // Priorities need the queue.
    let err = fs
        .materialize("nightly", Run::unpartitioned().priority(1))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert!(err.to_string().contains("priority"), "{err}");
    // Stepping options need the serial executor.
    let err = fs
        .materialize(
            "nightly",
            Run::unpartitioned().pause_between(Duration::from_millis(1)),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert!(err.to_string().contains("pause_between"), "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(all_records(&fs).await.is_empty());
}

#[tokio::test]
async fn queue_on_async_is_invalid_options() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fs = FlowStone::builder()
        .asset(counted("nightly", &calls))
        .build()
        .unwrap();
    let run = Run::unpartitioned().executor(Strategy::Async).queue("high");
    let err = fs.schedule("nightly", run.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert!(err.to_string().contains("queue"), "{err}");
    assert!(err.to_string().contains("async"), "{err}");
    let err = fs.materialize("nightly", run).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(all_records(&fs).await.is_empty());
}

#[tokio::test]
async fn strategy_queue_without_a_queue_is_a_config_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let fs = FlowStone::builder()
        .asset(counted("nightly", &calls))
        .build()
        .unwrap();
    let err = fs
        .materialize("nightly", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    let err = fs
        .schedule("nightly", Run::unpartitioned().executor(Strategy::Queue))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Jobs as data
// ---------------------------------------------------------------------------------------------

#[test]
fn a_job_with_every_field_set_round_trips_through_json() {
    let partition = Partition::Tuple(vec![day(2024, 1, 5).into(), "eu|west".into()]);
    let mut job = Job::new("daily_report", partition.clone());
    job.priority = 3;
    job.scheduled_at = Some(Utc.with_ymd_and_hms(2024, 1, 6, 2, 0, 0).unwrap());
    job.io_manager = Some("files".into());
    job.hooks = Some(vec!["audit".into(), "record".into(), "core".into()]);
    job.hook_config = BTreeMap::from([(
        "audit".to_owned(),
        json!({"level": "strict", "targets": [1, 2]}),
    )]);
    job.record = false;
    job.metadata = json!({"owner": "data-eng", "n": 7})
        .as_object()
        .unwrap()
        .clone();
    job.executor = "queue".into();

    let text = serde_json::to_string(&job).unwrap();
    let back: Job = serde_json::from_str(&text).unwrap();
    assert_eq!(back, job);
    // The partition travels in its canonical encoding.
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(value["partition"], json!(partition.encode()));
    assert_eq!(value["record"], json!(false));

    // And a bare job (defaults everywhere) round-trips too.
    let bare = Job::new("x", Partition::Unpartitioned);
    let back: Job = serde_json::from_str(&serde_json::to_string(&bare).unwrap()).unwrap();
    assert_eq!(back, bare);
}

#[tokio::test]
async fn job_status_routes_by_the_executor_named_in_a_deserialized_job() {
    let fs = FlowStone::builder()
        .asset(constant("answer", 5))
        .build()
        .unwrap();
    let job = fs
        .schedule("answer", Run::unpartitioned().executor(Strategy::Serial))
        .await
        .unwrap();
    // The caller only has the job's JSON, not the strategy.
    let job: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
    assert!(matches!(
        fs.job_status(&job).await.unwrap(),
        JobStatus::Completed(_)
    ));
    let mut unknown = job.clone();
    unknown.executor = "seriall".into();
    let err = fs.job_status(&unknown).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
    assert!(err.to_string().contains("did you mean 'serial'"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_honours_a_run_timeout() {
    let fs = FlowStone::builder()
        .asset(Asset::new("slow").execute(|_ctx| async {
            tokio::time::sleep(Duration::from_secs(10)).await;
            Ok::<_, Error>(0u8)
        }))
        .build()
        .unwrap();
    let run = Run::unpartitioned()
        .executor(Strategy::Async)
        .timeout(Duration::from_millis(50));
    let err = fs.materialize("slow", run.clone()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}");

    let job = fs.schedule("slow", run).await.unwrap();
    let mut status = fs.job_status(&job).await.unwrap();
    for _ in 0..2_000 {
        if status.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        status = fs.job_status(&job).await.unwrap();
    }
    match status {
        JobStatus::Failed(err) => assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}"),
        other => panic!("expected failed, got {other}"),
    }
    assert!(
        records(&fs, "slow")
            .await
            .iter()
            .all(|r| r.status == MaterializationStatus::Failed)
    );
}

/// A hook that panics: not the asset, so the core hook's panic guard does not cover it.
struct PanickingHook;

#[async_trait]
impl flowstone::hook::Hook for PanickingHook {
    async fn call(
        &self,
        _cx: &mut flowstone::hook::Materializing<'_>,
        _next: flowstone::hook::Next<'_>,
    ) -> flowstone::Result<Output> {
        panic!("hook bug");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_job_whose_hook_panics_does_not_stay_running() {
    let fs = FlowStone::builder()
        .hook("buggy", PanickingHook)
        .asset(constant("answer", 1))
        .build()
        .unwrap();
    let run = Run::unpartitioned().executor(Strategy::Async).hooks([
        "telemetry",
        "record",
        "buggy",
        "core",
    ]);
    let job = fs.schedule("answer", run).await.unwrap();
    let mut status = fs.job_status(&job).await.unwrap();
    for _ in 0..400 {
        if status.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        status = fs.job_status(&job).await.unwrap();
    }
    match status {
        JobStatus::Failed(err) => {
            assert_eq!(err.kind(), ErrorKind::Panicked, "{err}");
            assert!(err.to_string().contains("hook bug"), "{err}");
        }
        other => panic!("expected failed, got {other}"),
    }
    // Known gap (not asserted): the record hook's `running` record stays `running`, because the
    // panic unwound through the record hook before it could write the final status.
}
