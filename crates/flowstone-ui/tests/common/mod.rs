//! What the dashboard's tests share: a demo-like pipeline on a test database, a server on a
//! free loopback port, and a small HTTP/1.1 client (also under the WebDriver client).
//!
//! Each test binary uses part of it, hence `dead_code`.

#![allow(dead_code)]

pub mod http;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{Datelike, NaiveDate};
use flowstone::store::{Materialization, MaterializationStatus};
use flowstone::{
    Asset, Daily, Error, FlowStone, Monthly, Partition, PartitionMapping, RetryPolicy, RunId,
    Schedule,
};
use flowstone_queue::testing::TestDb;

/// The first day of the demo-like pipeline, and its last.
pub const FIRST_DAY: &str = "2024-01-01";
pub const LAST_DAY: &str = "2024-03-31";
/// The asset with 100 000 partitions (days from 1800-01-01).
pub const BIG: &str = "sensor_readings";
pub const BIG_PARTITIONS: usize = 100_000;

/// Milliseconds each `raw_events` partition takes (so a backfill's progress can be watched).
#[derive(Clone, Default)]
pub struct Delay(Arc<AtomicU64>);

impl Delay {
    pub fn set(&self, ms: u64) {
        self.0.store(ms, Ordering::SeqCst);
    }
    fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::SeqCst))
    }
}

/// Whether `day` is one `raw_events` fails on: every tenth day of the month.
pub fn fails_on(day: NaiveDate) -> bool {
    day.day().is_multiple_of(10)
}

/// The last day of the big asset's range.
pub fn big_last_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(1800, 1, 1).unwrap() + chrono::Days::new(BIG_PARTITIONS as u64 - 1)
}

/// The pipeline: raw_events (daily, fails every tenth day) -> clean_events (daily) ->
/// monthly_summary (monthly, reads its days through a time-window mapping); settings
/// (unpartitioned); sensor_readings (100 000 daily partitions, filled by [`fill_big`]); and a
/// schedule.
pub async fn pipeline(url: &str, delay: Delay) -> FlowStone {
    FlowStone::builder()
        .database(url)
        .asset(
            Asset::new("raw_events")
                .description("the day's events <as shipped>")
                .partitioned_by(Daily::from(FIRST_DAY).to(LAST_DAY))
                .retry(RetryPolicy::attempts(2).backoff(Duration::from_millis(10)))
                .tag("team", "ingest")
                .execute(move |ctx| {
                    let delay = delay.clone();
                    async move {
                        let day = ctx.partition().date()?;
                        tokio::select! {
                            () = tokio::time::sleep(delay.get()) => {}
                            () = ctx.cancellation().cancelled() => {
                                return Err(Error::cancelled(ctx.asset()));
                            }
                        }
                        if fails_on(day) {
                            return Err(Error::permanent(format!(
                                "the feed for {day} is corrupt <tenth day>"
                            )));
                        }
                        Ok::<_, Error>(vec![day.day(); 3])
                    }
                }),
        )
        .asset(
            Asset::new("clean_events")
                .depends_on(["raw_events"])
                .partitioned_by(Daily::from(FIRST_DAY).to(LAST_DAY))
                .execute(|ctx| async move {
                    let raw = ctx.dep::<Vec<u32>>("raw_events")?;
                    Ok::<_, Error>(raw.iter().sum::<u32>())
                }),
        )
        .asset(
            Asset::new("monthly_summary")
                .partitioned_by(Monthly::from("2024-01").to("2024-03"))
                .depends_on_mapped("clean_events", PartitionMapping::time_window())
                .execute(|ctx| async move {
                    let days = ctx.deps::<u32>("clean_events")?;
                    Ok::<_, Error>(days.iter().map(|(_, n)| u64::from(*n)).sum::<u64>())
                }),
        )
        .asset(Asset::new("settings").execute(|_ctx| async { Ok::<_, Error>(String::from("v1")) }))
        .asset(
            Asset::new(BIG)
                .partitioned_by(Daily::from("1800-01-01").to(big_last_day().to_string()))
                .execute(|_ctx| async { Ok::<_, Error>(1u8) }),
        )
        .schedule(Schedule::new("nightly_raw", "0 2 * * *").target("settings"))
        .connect()
        .await
        .expect("the pipeline builds on the test database")
}

/// A FlowStone on `t` with January materialized (its tenth, twentieth and thirtieth failed),
/// `settings` materialized, and nothing else.
pub async fn demo(t: &TestDb) -> (FlowStone, Delay) {
    let delay = Delay::default();
    let fs = pipeline(t.url(), delay.clone()).await;
    let january = flowstone::Backfill::range(day(2024, 1, 1), day(2024, 1, 31))
        .select("raw_events+")
        .anchor("raw_events");
    fs.run_backfill(january).await.expect("January backfills");
    fs.materialize("settings", flowstone::Run::unpartitioned())
        .await
        .expect("settings materialize");
    (fs, delay)
}

pub fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

/// The status [`fill_big`] gives partition `i`: every 97th failed, every 1000th missing,
/// every 5003rd running, the rest succeeded.
pub fn big_status(i: usize) -> Option<MaterializationStatus> {
    if i % 1000 == 999 {
        None
    } else if i.is_multiple_of(97) {
        Some(MaterializationStatus::Failed)
    } else if i % 5003 == 1 {
        Some(MaterializationStatus::Running)
    } else {
        Some(MaterializationStatus::Success)
    }
}

/// Records every partition of the big asset as [`big_status`] says (straight into the store,
/// as if run: 100 000 runs would take minutes).
pub async fn fill_big(fs: &FlowStone) {
    let store = Arc::clone(fs.runtime().store());
    let start = NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
    let now = chrono::Utc::now();
    let records: Vec<Materialization> = (0..BIG_PARTITIONS)
        .filter_map(|i| {
            let status = big_status(i)?;
            Some(Materialization {
                asset: BIG.to_owned(),
                partition: Partition::Date(start + chrono::Days::new(i as u64)),
                run_id: RunId::new(),
                status,
                executor: "async".into(),
                attempt: 1,
                started_at: now,
                finished_at: Some(now),
                duration: Some(Duration::from_millis(3)),
                error: (status == MaterializationStatus::Failed)
                    .then(|| Error::failed("sensor offline").to_record()),
                metadata: serde_json::Map::new(),
                backfill_id: None,
            })
        })
        .collect();
    // Concurrent writes share group commits.
    for chunk in records.chunks(2000) {
        let writes = chunk.iter().map(|m| store.record(m));
        for result in futures_util::future::join_all(writes).await {
            result.expect("a big-grid record is stored");
        }
    }
}

/// [`demo`] served without a token.
pub async fn served(t: &TestDb) -> (FlowStone, Delay, Server) {
    let (fs, delay) = demo(t).await;
    let server = Server::start(fs.clone(), None).await;
    (fs, delay, server)
}

/// A dashboard served on a free loopback port until dropped.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(fs: FlowStone, token: Option<&str>) -> Server {
        let listener = flowstone_ui::listen("127.0.0.1:0".parse().unwrap(), token)
            .await
            .expect("a loopback port binds");
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let token = token.map(str::to_owned);
        let task = tokio::spawn(async move {
            flowstone_ui::serve_on(fs, listener, token, async {
                let _ = stopped.await;
            })
            .await
            .expect("the dashboard serves");
        });
        Server {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`, which must answer 200.
    pub async fn page(&self, path: &str) -> http::Response {
        let response = self.get(path).await;
        assert_eq!(response.status, 200, "GET {path}: {}", response.body);
        response
    }

    pub async fn get(&self, path: &str) -> http::Response {
        http::request(self.addr, "GET", path, &[], None).await
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> http::Response {
        let body = http::form(form);
        http::request(
            self.addr,
            "POST",
            path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(body.as_bytes()),
        )
        .await
    }

    /// Stops the server and waits for it (open event streams end with it).
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// The CSRF token the page's forms carry.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html
        .find(marker)
        .expect("the page has a form with a CSRF token")
        + marker.len();
    html[start..start + 64].to_owned()
}

/// Polls `check` every 50 ms until it holds or `what` times out after 30 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
