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

use common::outcome::{
    assert_error, assert_error_in, completed, failed, failure, job_status, latest_record,
    materialized, output, schedule_failure, scheduled,
};
use common::wait::{wait_finished, wait_until};
use common::{
    Counter, RunLog, Shared, all_records, chain, constant, counted, day, graph, numbered, records,
};

/// An unpartitioned run on `strategy`.
fn on(strategy: Strategy) -> Run {
    Run::unpartitioned().executor(strategy)
}

// ---------------------------------------------------------------------------------------------
// TaskAsync
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_status_and_cancel_work_from_another_task() {
    let started = Arc::new(Notify::new());
    let finished_work = Arc::new(AtomicBool::new(false));
    let (s, f) = (Arc::clone(&started), Arc::clone(&finished_work));
    let fs = graph([Asset::new("long").execute(move |_ctx| {
        let (started, finished_work) = (Arc::clone(&s), Arc::clone(&f));
        async move {
            started.notify_one();
            tokio::time::sleep(Duration::from_secs(10)).await;
            // Never reached: the cancel drops the future at the await above.
            finished_work.store(true, Ordering::SeqCst);
            Ok::<_, Error>(1u8)
        }
    })]);

    let job = scheduled(&fs, "long", on(Strategy::Async)).await;
    assert_eq!(job.executor, "async");
    started.notified().await;

    // Status and cancel from a task that did not schedule the job.
    let (fs2, job2) = (fs.clone(), job.clone());
    let after_cancel = tokio::spawn(async move {
        let before = job_status(&fs2, &job2).await;
        assert!(matches!(before, JobStatus::Running), "{before}");
        fs2.cancel_job(&job2).await.unwrap();
        job_status(&fs2, &job2).await
    })
    .await
    .unwrap();
    assert!(
        matches!(after_cancel, JobStatus::Cancelled),
        "{after_cancel}"
    );
    // And from this task too.
    let status = job_status(&fs, &job).await;
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
    assert!(matches!(job_status(&fs, &job).await, JobStatus::Cancelled));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_cancels_a_job_still_waiting_for_a_slot() {
    let release = Arc::new(Notify::new());
    let log = RunLog::default();
    let (r, l) = (Arc::clone(&release), log.clone());
    let fs = FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(1))
        .asset(
            Asset::new("gate")
                .partitioned_by(numbered())
                .execute(move |ctx| {
                    let (release, log) = (Arc::clone(&r), l.clone());
                    async move {
                        log.push(format!("start {}", ctx.partition()));
                        release.notified().await;
                        Ok::<_, Error>(0u8)
                    }
                }),
        )
        .build()
        .unwrap();
    let async_run = |i: i64| Run::partition(i).executor(Strategy::Async);
    let one = scheduled(&fs, "gate", async_run(1)).await;
    let two = scheduled(&fs, "gate", async_run(2)).await;
    wait_until("one job runs", || log.entries().len() == 1).await;
    // Tasks race for the single slot: whichever started holds it, the other waits.
    let started = log.entries()[0].clone();
    let (first, second) = if started == "start i:1" {
        (one, two)
    } else {
        (two, one)
    };
    let status = job_status(&fs, &second).await;
    assert!(
        matches!(status, JobStatus::Pending { attempt: 1, .. }),
        "{status}"
    );

    fs.cancel_job(&second).await.unwrap();
    assert!(matches!(
        job_status(&fs, &second).await,
        JobStatus::Cancelled
    ));
    release.notify_one();
    assert!(matches!(
        wait_finished(&fs, &first).await,
        JobStatus::Completed(_)
    ));
    // The cancelled job never started.
    assert_eq!(log.entries(), [started]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_runs_at_most_max_concurrency_at_once_and_reaches_it() {
    let current = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let started = Counter::default();
    let gate = Arc::new(Semaphore::new(0));
    let (c, p, s, g) = (
        Arc::clone(&current),
        Arc::clone(&peak),
        started.clone(),
        Arc::clone(&gate),
    );
    let fs = FlowStone::builder()
        .executor(TaskAsyncExecutor::new().max_concurrency(3))
        .asset(
            Asset::new("worker")
                .partitioned_by(numbered())
                .execute(move |ctx| {
                    let (current, peak, started, gate) =
                        (Arc::clone(&c), Arc::clone(&p), s.clone(), Arc::clone(&g));
                    async move {
                        let now = current.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        started.bump();
                        // Hold the slot until the test opens the gate, so running jobs overlap.
                        gate.acquire().await.unwrap().forget();
                        current.fetch_sub(1, Ordering::SeqCst);
                        ctx.partition().int()
                    }
                }),
        )
        .build()
        .unwrap();

    let mut jobs = Vec::new();
    for i in 0..12i64 {
        jobs.push(scheduled(&fs, "worker", Run::partition(i).executor(Strategy::Async)).await);
    }
    // Three start and block; the other nine wait for a slot.
    wait_until("three jobs run", || started.get() == 3).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(started.get(), 3, "a fourth job started");
    let mut pending = 0;
    for job in &jobs {
        if matches!(job_status(&fs, job).await, JobStatus::Pending { .. }) {
            pending += 1;
        }
    }
    assert_eq!(pending, 9);

    gate.add_permits(12);
    for job in &jobs {
        let out: i64 = completed(wait_finished(&fs, job).await);
        assert_eq!(out, job.partition.int().unwrap(), "{:?}", job.partition);
    }
    assert_eq!(started.get(), 12);
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    assert_eq!(current.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_materialize_waits_for_the_output() {
    let fs = graph([constant("answer", 42u32)]);
    let value: u32 = output(&fs, "answer", on(Strategy::Async)).await;
    assert_eq!(value, 42);
    assert_eq!(latest_record(&fs, "answer").await.executor, "async");
}

// ---------------------------------------------------------------------------------------------
// Sync
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn sync_schedule_keeps_the_result_for_job_status() {
    let fs = graph([
        constant("answer", 42u32),
        Asset::new("broken")
            .execute(|_ctx| async { Err::<u32, _>(Error::permanent("input file is empty")) }),
    ]);

    let job = scheduled(&fs, "answer", on(Strategy::Sync)).await;
    assert_eq!(job.executor, "sync");
    assert_eq!(completed::<u32>(job_status(&fs, &job).await), 42);

    let job = scheduled(&fs, "broken", on(Strategy::Sync)).await;
    let err = failed(job_status(&fs, &job).await);
    assert_error(&err, ErrorKind::ExecutionFailed, &["input file is empty"]);
    assert!(!err.retryable());

    // A job this executor never saw is NotFound, not a panic.
    let mut stranger = job.clone();
    stranger.id = flowstone::JobId::new();
    let err = fs.job_status(&stranger).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Serial
// ---------------------------------------------------------------------------------------------

/// The chain a <- b <- c materialized with its upstream on the Serial executor.
fn serial_chain() -> Run {
    on(Strategy::Serial).with_upstream(true)
}

#[tokio::test]
async fn serial_on_step_sees_before_and_after_for_each_job_in_order() {
    let log = RunLog::default();
    let fs = chain(&log);
    let steps = RunLog::default();
    let job_ids: Arc<Mutex<Vec<flowstone::JobId>>> = Arc::default();
    let (st, ids) = (steps.clone(), Arc::clone(&job_ids));
    let run = serial_chain()
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
        });
    materialized(&fs, "c", run).await;
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
    let times: Shared<(String, Instant)> = Arc::default();
    let t = Arc::clone(&times);
    let t0 = Instant::now();
    let run = serial_chain().pause_between(pause).on_step(move |step| {
        let label = match step {
            Step::Before(job) => format!("before {}", job.asset),
            Step::After(job, _) => format!("after {}", job.asset),
        };
        t.lock().unwrap().push((label, Instant::now()));
    });
    materialized(&fs, "c", run).await;
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
    let fs = graph([constant("answer", 7u32)]);
    let job = scheduled(&fs, "answer", on(Strategy::Serial)).await;
    assert_eq!(completed::<u32>(job_status(&fs, &job).await), 7);
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

#[tokio::test]
async fn a_custom_executor_works_through_strategy_custom() {
    let calls = Counter::default();
    let fs = graph([counted("api_pull", &calls)]);
    let limiter: Arc<dyn Executor> = Arc::new(RateLimited::new(2, Duration::from_secs(3600)));
    let limited = || on(Strategy::Custom(Arc::clone(&limiter)));

    let job = scheduled(&fs, "api_pull", limited()).await;
    assert_eq!(job.executor, "rate_limited");
    // job_status routes to the custom executor by the name in the job.
    assert_eq!(completed::<u32>(job_status(&fs, &job).await), 1);

    let second: u32 = output(&fs, "api_pull", limited()).await;
    assert_eq!(second, 2);

    let err = failure(&fs, "api_pull", limited()).await;
    assert!(err.to_string().contains("rate limit"), "{err}");
    assert_eq!(calls.get(), 2, "the third call was refused");
    let recs = records(&fs, "api_pull").await;
    assert_eq!(recs.len(), 2);
    assert!(
        recs.iter().all(|r| r.executor == "rate_limited"),
        "{recs:?}"
    );

    // A different executor under the same name is refused rather than silently swapped.
    let impostor: Arc<dyn Executor> = Arc::new(RateLimited::new(9, Duration::from_secs(1)));
    let err = failure(&fs, "api_pull", on(Strategy::Custom(impostor))).await;
    assert_eq!(err.kind(), ErrorKind::Config, "{err}");
}

#[tokio::test]
async fn a_custom_executor_works_by_registered_name() {
    let calls = Counter::default();
    let fs = FlowStone::builder()
        .executor(RateLimited::new(1, Duration::from_secs(3600)))
        .asset(counted("api_pull", &calls))
        .asset(counted("by_default", &calls).executor("rate_limited"))
        .build()
        .unwrap();
    let job = scheduled(&fs, "api_pull", on(Strategy::named("rate_limited"))).await;
    assert_eq!(job.executor, "rate_limited");
    assert!(matches!(
        job_status(&fs, &job).await,
        JobStatus::Completed(_)
    ));
    // The limit is shared with the asset that names the executor as its default.
    let err = failure(&fs, "by_default", Run::unpartitioned()).await;
    assert!(err.to_string().contains("rate limit"), "{err}");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn job_status_on_a_custom_executor_without_status_is_unsupported() {
    let fs = FlowStone::builder()
        .executor(Forgetful(SyncExecutor::new()))
        .asset(constant("answer", 1u32))
        .build()
        .unwrap();
    let forgetful = || on(Strategy::named("forgetful"));
    let job = scheduled(&fs, "answer", forgetful()).await;
    let err = fs.job_status(&job).await.unwrap_err();
    assert_error(&err, ErrorKind::Unsupported, &["forgetful"]);
    let err = fs.cancel_job(&job).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported, "{err}");
    // Its capabilities are enforced too: no timeout option.
    let err = failure(&fs, "answer", forgetful().timeout(Duration::from_secs(1))).await;
    assert_eq!(err.kind(), ErrorKind::InvalidOptions, "{err}");
}

// ---------------------------------------------------------------------------------------------
// Capabilities and selection
// ---------------------------------------------------------------------------------------------

/// A run that `materialize` and `schedule` must both refuse: what it is, the run, and the
/// error's kind and the words its message must contain.
type Refusal = (&'static str, Run, ErrorKind, &'static [&'static str]);

/// Asserts every one of `refusals` on an asset `nightly`, then that it never ran.
async fn assert_refused_before_running(refusals: Vec<Refusal>) {
    let calls = Counter::default();
    let fs = graph([counted("nightly", &calls)]);
    for (case, run, kind, mentions) in refusals {
        let err = failure(&fs, "nightly", run.clone()).await;
        assert_error_in(&format!("materialize, {case}"), &err, kind, mentions);
        let err = schedule_failure(&fs, "nightly", run).await;
        assert_error_in(&format!("schedule, {case}"), &err, kind, mentions);
    }
    assert_eq!(calls.get(), 0, "a refused run must not execute");
    assert!(all_records(&fs).await.is_empty());
}

#[tokio::test]
async fn scheduled_at_on_sync_is_invalid_options_and_nothing_runs() {
    let tomorrow = Utc::now() + chrono::Duration::days(1);
    let invalid = ErrorKind::InvalidOptions;
    assert_refused_before_running(vec![
        (
            "scheduled_at on Sync",
            on(Strategy::Sync).scheduled_at(tomorrow),
            invalid,
            &["scheduled_at", "sync"],
        ),
        (
            "scheduled_at on Auto without a database",
            on(Strategy::Auto).scheduled_at(tomorrow),
            invalid,
            &["scheduled_at", "sync"],
        ),
        // Priorities need the queue.
        (
            "priority on Auto without a database",
            Run::unpartitioned().priority(1),
            invalid,
            &["priority"],
        ),
        // Stepping options need the serial executor.
        (
            "pause_between on Auto",
            Run::unpartitioned().pause_between(Duration::from_millis(1)),
            invalid,
            &["pause_between"],
        ),
    ])
    .await;
}

#[tokio::test]
async fn queue_on_async_is_invalid_options() {
    assert_refused_before_running(vec![(
        "queue on Async",
        on(Strategy::Async).queue("high"),
        ErrorKind::InvalidOptions,
        &["queue", "async"],
    )])
    .await;
}

#[tokio::test]
async fn strategy_queue_without_a_queue_is_a_config_error() {
    assert_refused_before_running(vec![(
        "Queue without a database",
        on(Strategy::Queue),
        ErrorKind::Config,
        &[],
    )])
    .await;
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
    let fs = graph([constant("answer", 5u32)]);
    let job = scheduled(&fs, "answer", on(Strategy::Serial)).await;
    // The caller only has the job's JSON, not the strategy.
    let job: Job = serde_json::from_str(&serde_json::to_string(&job).unwrap()).unwrap();
    assert!(matches!(
        job_status(&fs, &job).await,
        JobStatus::Completed(_)
    ));
    let mut unknown = job.clone();
    unknown.executor = "seriall".into();
    let err = fs.job_status(&unknown).await.unwrap_err();
    assert_error(&err, ErrorKind::Config, &["did you mean 'serial'"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_async_honours_a_run_timeout() {
    let fs = graph([Asset::new("slow").execute(|_ctx| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Ok::<_, Error>(0u8)
    })]);
    let run = on(Strategy::Async).timeout(Duration::from_millis(50));
    let err = failure(&fs, "slow", run.clone()).await;
    assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}");

    let job = scheduled(&fs, "slow", run).await;
    let err = failed(wait_finished(&fs, &job).await);
    assert_eq!(err.kind(), ErrorKind::ExecutionTimeout, "{err}");
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
        .asset(constant("answer", 1u32))
        .build()
        .unwrap();
    let run = on(Strategy::Async).hooks(["telemetry", "record", "buggy", "core"]);
    let job = scheduled(&fs, "answer", run).await;
    let err = failed(wait_finished(&fs, &job).await);
    assert_error(&err, ErrorKind::Panicked, &["hook bug"]);
    // Known gap (not asserted): the record hook's `running` record stays `running`, because the
    // panic unwound through the record hook before it could write the final status.
}
