//! Dashboard benchmarks (`flowstone-bench ui`), on a SQLite file:
//!
//! - `ui_asset_page_100k`: server time of the asset page of an asset with 100,000 daily
//!   partitions, all materialized, one in fifty failed (the router called as a service, body
//!   included; no socket).
//! - `ui_grid_browser_100k`: in headless Chromium (`/usr/bin/chromium`, skipped when absent),
//!   from navigation start to the grid drawn (the page's script draws it before the first
//!   paint and records the time in `data-drawn-ms`), read back with `--dump-dom`.
//! - `ui_metrics`: server time of `/metrics`.
//! - `ui_overview_1m`: server time of the overview after nine more runs of every partition
//!   (1,000,000 materialization records).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use flowstone::store::{Materialization, MaterializationStatus};
use flowstone::{Asset, Daily, Error, FlowStone, Partition, RunId};
use serde_json::json;
use tower::Service;

use crate::report::{emit, median};

const PARTITIONS: usize = 100_000;
const ASSET: &str = "readings";

/// Runs every dashboard figure.
pub async fn run_all() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("flowstone-bench-ui-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = figures(&dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn first_day() -> chrono::NaiveDate {
    chrono::NaiveDate::from_ymd_opt(1800, 1, 1).expect("a date")
}

async fn figures(dir: &std::path::Path) -> anyhow::Result<()> {
    let url = format!("sqlite://{}", dir.join("ui.db").display());
    let last = first_day() + chrono::Days::new(PARTITIONS as u64 - 1);
    let fs = FlowStone::builder()
        .database(url)
        .asset(
            Asset::new(ASSET)
                .partitioned_by(Daily::from("1800-01-01").to(last.to_string()))
                .execute(|_ctx| async { Ok::<_, Error>(1u8) }),
        )
        .asset(
            Asset::new("downstream")
                .depends_on([ASSET])
                .partitioned_by(Daily::from("1800-01-01").to(last.to_string()))
                .execute(|_ctx| async { Ok::<_, Error>(2u8) }),
        )
        .connect()
        .await?;
    let started = Instant::now();
    record_runs(&fs, 1).await?;
    let fill_s = started.elapsed().as_secs_f64();

    let mut app = flowstone_ui::router(fs.clone(), flowstone_ui::UiOptions::default());
    let page = format!("/assets/{ASSET}");
    let (ms, bytes) = time_get(&mut app, &page, 10).await?;
    emit(
        "ui_asset_page_100k",
        json!({"median_ms": round(ms), "bytes": bytes, "partitions": PARTITIONS,
               "records": PARTITIONS, "fill_s": round(fill_s), "target_ms": 150}),
    );
    browser_figure(fs.clone(), &page).await?;
    let (ms, bytes) = time_get(&mut app, "/metrics", 20).await?;
    emit(
        "ui_metrics",
        json!({"median_ms": round(ms), "bytes": bytes, "target_ms": 10}),
    );

    record_runs(&fs, 9).await?;
    let (ms, _) = time_get(&mut app, "/", 10).await?;
    emit(
        "ui_overview_1m",
        json!({"median_ms": round(ms), "records": PARTITIONS * 10, "target_ms": 100}),
    );
    let (ms, _) = time_get(&mut app, &page, 5).await?;
    emit(
        "ui_asset_page_100k_of_1m",
        json!({"median_ms": round(ms), "records": PARTITIONS * 10, "partitions": PARTITIONS}),
    );
    Ok(())
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `runs` more records of every partition (the newest of the last run: one in fifty failed),
/// written straight into the store as the record hook would.
async fn record_runs(fs: &FlowStone, runs: usize) -> anyhow::Result<()> {
    let store = Arc::clone(fs.runtime().store());
    for run in 0..runs {
        let at = chrono::Utc::now();
        let records: Vec<Materialization> = (0..PARTITIONS)
            .map(|i| {
                let failed = i % 50 == 7 && run + 1 == runs;
                Materialization {
                    asset: ASSET.to_owned(),
                    partition: Partition::Date(first_day() + chrono::Days::new(i as u64)),
                    run_id: RunId::new(),
                    status: if failed {
                        MaterializationStatus::Failed
                    } else {
                        MaterializationStatus::Success
                    },
                    executor: "async".into(),
                    attempt: 1,
                    started_at: at,
                    finished_at: Some(at),
                    duration: Some(Duration::from_millis(2)),
                    error: failed.then(|| Error::failed("sensor offline").to_record()),
                    metadata: serde_json::Map::new(),
                    backfill_id: None,
                }
            })
            .collect();
        for chunk in records.chunks(4096) {
            // Concurrent writes share the store's group commits.
            for result in
                futures_util::future::join_all(chunk.iter().map(|m| store.record(m))).await
            {
                result?;
            }
        }
    }
    Ok(())
}

/// Median milliseconds of `n` GETs of `path` through the router, and the body's size.
async fn time_get(app: &mut axum::Router, path: &str, n: usize) -> anyhow::Result<(f64, usize)> {
    let mut sample = Vec::with_capacity(n);
    let mut bytes = 0;
    for _ in 0..=n {
        let started = Instant::now();
        let request = Request::get(path).body(Body::empty())?;
        let response = app.call(request).await?;
        anyhow::ensure!(
            response.status().is_success(),
            "GET {path}: {}",
            response.status()
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
        sample.push(started.elapsed().as_secs_f64() * 1000.0);
        bytes = body.len();
    }
    // The first request warms caches and the connection pool.
    sample.remove(0);
    Ok((median(&mut sample), bytes))
}

/// `ui_grid_browser_100k`: Chromium loads the page three times; the script's own timings.
async fn browser_figure(fs: FlowStone, page: &str) -> anyhow::Result<()> {
    const CHROMIUM: &str = "/usr/bin/chromium";
    if !std::path::Path::new(CHROMIUM).exists() {
        emit(
            "ui_grid_browser_100k",
            json!({"skipped": "no /usr/bin/chromium"}),
        );
        return Ok(());
    }
    let listener = flowstone_ui::listen("127.0.0.1:0".parse()?, None).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(flowstone_ui::serve_on(fs, listener, None, async {
        let _ = stopped.await;
    }));
    let mut drawn = Vec::new();
    for _ in 0..3 {
        let out = tokio::process::Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                "--dump-dom",
                &format!("http://{addr}{page}"),
            ])
            .output()
            .await?;
        let dom = String::from_utf8_lossy(&out.stdout);
        let attr = |name: &str| -> Option<f64> {
            let marker = format!("{name}=\"");
            let start = dom.find(&marker)? + marker.len();
            dom[start..].split('"').next()?.parse().ok()
        };
        let d = attr("data-drawn-ms").ok_or_else(|| {
            anyhow::anyhow!("the grid was not drawn: {}", &dom[..dom.len().min(300)])
        })?;
        drawn.push(d);
    }
    let _ = stop.send(());
    let _ = server.await;
    emit(
        "ui_grid_browser_100k",
        json!({"median_navigation_to_grid_drawn_ms": round(median(&mut drawn)),
               "runs": 3, "target_ms": 1000}),
    );
    Ok(())
}
