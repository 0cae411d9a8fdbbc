//! The dashboard over HTTP, on SQLite and PostgreSQL (`sqlite::<name>`, `postgres::<name>`):
//! pages render what the database holds, links lead to pages that exist, bad URLs are 404s
//! naming the input, actions need POST with the CSRF token, and a token guards the server.
//! The browser suite (`tests/browser.rs`) drives the same pages in Chromium.

mod common;

use common::{BIG, BIG_PARTITIONS, Server, csrf_of, demo, eventually, served};
use flowstone_queue::testing::TestDb;

flowstone_queue::both_engines!(
    overview_shows_assets_failures_and_queue,
    graph_links_every_asset_and_labels_mappings,
    asset_page_shows_definition_and_grid,
    big_grid_has_one_status_per_partition,
    partition_page_shows_attempts_errors_lineage_output,
    bad_urls_are_404s_naming_the_input,
    actions_need_post_and_the_csrf_token,
    materialize_and_schedule_switch_from_forms,
    backfill_from_the_form_runs_and_streams_progress,
    jobs_pages_list_and_show_queue_jobs,
    metrics_endpoint_speaks_prometheus,
    token_guards_every_request,
    worker_metrics_endpoint_serves_only_metrics,
);

async fn overview_shows_assets_failures_and_queue(t: &TestDb) {
    let (_, _, server) = served(t).await;
    let page = server.page("/").await;
    for asset in [
        "raw_events",
        "clean_events",
        "monthly_summary",
        "settings",
        BIG,
    ] {
        assert!(
            page.body.contains(&format!("href=\"/assets/{asset}\"")),
            "{asset} is linked"
        );
    }
    // The failures' error text, escaped.
    assert!(
        page.body.contains("is corrupt &lt;tenth day&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<tenth day>"));
    assert!(page.body.contains("id=\"queue-depth\""));
    assert!(page.body.contains("id=\"active-backfills\""));
    server.stop().await;
}

async fn graph_links_every_asset_and_labels_mappings(t: &TestDb) {
    let (_, _, server) = served(t).await;
    let page = server.page("/graph").await;
    assert!(page.body.contains("<svg"));
    for asset in [
        "raw_events",
        "clean_events",
        "monthly_summary",
        "settings",
        BIG,
    ] {
        let href = format!("href=\"/assets/{asset}\"");
        assert!(page.body.contains(&href), "{asset} is a link");
        let linked = server.get(&format!("/assets/{asset}")).await;
        assert_eq!(linked.status, 200, "{asset}'s link leads to its page");
    }
    assert!(page.body.contains("time window"), "the mapping is labelled");
    // raw_events' newest record is a success or a failure, never "missing".
    assert!(page.body.contains("data-asset=\"raw_events\""));
    assert!(
        page.body.contains("status-missing"),
        "sensor_readings has no record"
    );
    server.stop().await;
}

async fn asset_page_shows_definition_and_grid(t: &TestDb) {
    let (_, _, server) = served(t).await;
    let page = server.page("/assets/raw_events").await;
    assert!(
        page.body
            .contains("the day&#39;s events &lt;as shipped&gt;")
    );
    assert!(page.body.contains("team=ingest"));
    // The wait is 10 ms give or take the jitter.
    assert!(page.body.contains("2 attempts, waiting about "));
    assert!(page.body.contains(" ms between them"));
    let codes = grid_codes(&page.body);
    assert_eq!(codes.len(), 91, "one code per day of the quarter");
    // January: the 10th, 20th and 30th failed, the rest succeeded; February on is missing.
    assert_eq!(&codes[..31], "sssssssssfsssssssssfsssssssssfs");
    assert!(codes[31..].chars().all(|c| c == '.'));
    assert!(page.body.contains("id=\"count-failed\">3<"));
    // Filters: by status, and by range.
    let failed = server.get("/assets/raw_events?status=failed").await;
    assert_eq!(grid_codes(&failed.body), "fff");
    let range = server
        .get("/assets/raw_events?from=2024-01-09&to=2024-01-11")
        .await;
    assert_eq!(grid_codes(&range.body), "sfs");
    let bad = server.get("/assets/raw_events?status=purple").await;
    bad.expect(400, "purple");
    server.stop().await;
}

async fn big_grid_has_one_status_per_partition(t: &TestDb) {
    let (fs, _) = demo(t).await;
    common::fill_big(&fs).await;
    let server = Server::start(fs, None).await;
    let page = server.page(&format!("/assets/{BIG}")).await;
    let codes = grid_codes(&page.body);
    assert_eq!(codes.len(), BIG_PARTITIONS);
    for (i, code) in codes.chars().enumerate() {
        let expected = match common::big_status(i) {
            None => '.',
            Some(flowstone::store::MaterializationStatus::Failed) => 'f',
            Some(flowstone::store::MaterializationStatus::Running) => 'r',
            Some(_) => 's',
        };
        assert_eq!(code, expected, "partition {i}");
    }
    // Compact: no element per partition.
    assert!(page.body.matches("<td").count() < 100);
    assert!(page.body.len() < 2_500_000, "{} bytes", page.body.len());
    server.stop().await;
}

async fn partition_page_shows_attempts_errors_lineage_output(t: &TestDb) {
    let (_, _, server) = served(t).await;
    let failed = server
        .page("/assets/raw_events/partitions/2024-01-10")
        .await;
    assert!(
        failed
            .body
            .contains("the feed for 2024-01-10 is corrupt &lt;tenth day&gt;")
    );
    assert!(failed.body.contains("no output stored"));
    assert!(failed.body.contains("id=\"rerun\""));
    let ok = server
        .get("/assets/clean_events/partitions/2024-01-05")
        .await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("bytes"), "output size is shown");
    // Upstream lineage links to the raw partition it read, and that link works.
    let up = "href=\"/assets/raw_events/partitions/2024-01-05\"";
    assert!(ok.body.contains(up), "{}", ok.body);
    assert_eq!(
        server
            .get("/assets/raw_events/partitions/2024-01-05")
            .await
            .status,
        200
    );
    // Downstream: what read the raw day.
    let raw = server.get("/assets/raw_events/partitions/2024-01-05").await;
    assert!(
        raw.body
            .contains("href=\"/assets/clean_events/partitions/2024-01-05\"")
    );
    let settings = server.page("/assets/settings/partitions/-").await;
    assert!(settings.body.contains("success"));
    server.stop().await;
}

async fn bad_urls_are_404s_naming_the_input(t: &TestDb) {
    let (_, _, server) = served(t).await;
    for (path, named) in [
        ("/assets/no_such_asset", "no_such_asset"),
        ("/assets/raw_events/partitions/2024-13-45", "2024-13-45"),
        ("/assets/raw_events/partitions/2031-01-01", "2031-01-01"),
        ("/assets/settings/partitions/2024-01-01", "2024-01-01"),
        ("/jobs/abc", "abc"),
        ("/jobs/999999", "999999"),
        ("/backfills/not-a-uuid", "not-a-uuid"),
        (
            "/backfills/0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b",
            "0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b",
        ),
        (
            "/backfills/0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b/events",
            "0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b",
        ),
        ("/nowhere", "/nowhere"),
    ] {
        let page = server.get(path).await;
        assert_eq!(page.status, 404, "{path}");
        assert!(page.body.contains(named), "{path}: {}", page.body);
        assert!(page.body.contains("id=\"error-message\""));
    }
    // Input is escaped in the error page too.
    let page = server.get("/assets/%3Cscript%3E").await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("&lt;script&gt;") && !page.body.contains("<script>"));
    server.stop().await;
}

async fn actions_need_post_and_the_csrf_token(t: &TestDb) {
    let (fs, _) = demo(t).await;
    let store = std::sync::Arc::clone(fs.runtime().store());
    let server = Server::start(fs, None).await;
    let before = store
        .list(&flowstone::store::MaterializationQuery::asset("settings"))
        .await
        .unwrap()
        .len();
    // No token, a wrong token: refused, nothing ran.
    let none = server.post("/assets/settings/materialize", &[]).await;
    none.expect(403, "CSRF");
    let wrong = server
        .post("/assets/settings/materialize", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(wrong.status, 403);
    // GET never acts.
    assert_eq!(server.get("/assets/settings/materialize").await.status, 405);
    assert_eq!(
        server.get("/automation/schedules/nightly_raw").await.status,
        405
    );
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let after = store
        .list(&flowstone::store::MaterializationQuery::asset("settings"))
        .await
        .unwrap()
        .len();
    assert_eq!(before, after, "no refused action ran");
    server.stop().await;
}

async fn materialize_and_schedule_switch_from_forms(t: &TestDb) {
    let (fs, _, server) = served(t).await;
    let csrf = csrf_of(&server.get("/assets/raw_events").await.body);
    let done = server
        .post(
            "/assets/raw_events/materialize",
            &[("csrf", &csrf), ("partition", "2024-02-03")],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.header("location"),
        Some("/assets/raw_events/partitions/2024-02-03")
    );
    eventually(
        "the materialization started from the form succeeds",
        || async {
            server
                .get("/assets/raw_events/partitions/2024-02-03")
                .await
                .body
                .contains("badge status-success")
        },
    )
    .await;
    let bad = server
        .post(
            "/assets/raw_events/materialize",
            &[("csrf", &csrf), ("partition", "yesterday")],
        )
        .await;
    bad.expect(400, "yesterday");
    // The schedule switch.
    assert!(fs.schedule_enabled("nightly_raw").await.unwrap());
    let off = server
        .post(
            "/automation/schedules/nightly_raw",
            &[("csrf", &csrf), ("on", "false")],
        )
        .await;
    assert_eq!(off.status, 303);
    assert!(!fs.schedule_enabled("nightly_raw").await.unwrap());
    let page = server.get("/automation").await;
    assert!(page.body.contains("Turn on"));
    assert!(
        page.body.contains("id=\"ticks\""),
        "the recent ticks are listed"
    );
    assert!(
        page.body.contains("No leader"),
        "nobody runs automation here"
    );
    let kind = server
        .post(
            "/automation/widgets/nightly_raw",
            &[("csrf", &csrf), ("on", "true")],
        )
        .await;
    kind.expect(404, "widgets");
    let unknown = server
        .post(
            "/automation/schedules/hourly",
            &[("csrf", &csrf), ("on", "true")],
        )
        .await;
    unknown.expect(404, "hourly");
    server.stop().await;
}

async fn backfill_from_the_form_runs_and_streams_progress(t: &TestDb) {
    let (_, delay, server) = served(t).await;
    delay.set(20);
    let csrf = csrf_of(&server.get("/assets/raw_events").await.body);
    let started = server
        .post(
            "/assets/raw_events/backfill",
            &[
                ("csrf", &csrf),
                ("from", "2024-02-01"),
                ("to", "2024-02-29"),
            ],
        )
        .await;
    assert_eq!(started.status, 303);
    let location = started.header("location").unwrap().to_owned();
    assert!(
        location.starts_with("/backfills/") && location.len() > 20,
        "{location}"
    );
    // The event stream ends when the backfill does; its last event says so.
    let events = server.page(&format!("{location}/events")).await;
    let progress: Vec<serde_json::Value> = events
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(|d| serde_json::from_str(d.trim()).unwrap())
        .collect();
    assert!(progress.len() >= 2, "{progress:?}");
    let last = progress.last().unwrap();
    assert_eq!(last["finished"], true);
    assert_eq!(last["total"], 29);
    assert_eq!(last["done"], 29);
    assert_eq!(last["failed"], 2, "the 10th and 20th");
    let page = server.get(&location).await;
    assert!(page.body.contains("completed_with_failures"));
    assert!(page.body.contains("29/29"));
    // An ended backfill cannot be cancelled.
    let cancel = server
        .post(&format!("{location}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(cancel.status, 409);
    let list = server.get("/backfills").await;
    assert!(list.body.contains(&location));
    server.stop().await;
}

async fn jobs_pages_list_and_show_queue_jobs(t: &TestDb) {
    let (fs, _) = demo(t).await;
    // A job nobody works: it waits on the queue.
    let job = fs
        .schedule(
            "raw_events",
            flowstone::Run::partition(common::day(2024, 3, 3)).executor(flowstone::Strategy::Queue),
        )
        .await
        .unwrap();
    let number = job.metadata[flowstone::queue::QUEUE_JOB_ID]
        .as_i64()
        .unwrap();
    let server = Server::start(fs, None).await;
    let list = server.page("/jobs").await;
    assert!(list.body.contains(&format!("href=\"/jobs/{number}\"")));
    assert!(
        server.get("/").await.body.contains("available"),
        "queue depth"
    );
    let detail = server.page(&format!("/jobs/{number}")).await;
    assert!(detail.body.contains("2024-03-03"));
    let csrf = csrf_of(&detail.body);
    let cancel = server
        .post(&format!("/jobs/{number}/cancel"), &[("csrf", &csrf)])
        .await;
    assert_eq!(cancel.status, 303);
    let detail = server.get(&format!("/jobs/{number}")).await;
    assert!(detail.body.contains("badge status-cancelled"));
    assert!(detail.body.contains("id=\"retry-job\""));
    let retry = server
        .post(&format!("/jobs/{number}/retry"), &[("csrf", &csrf)])
        .await;
    assert_eq!(retry.status, 303);
    let again = retry.header("location").unwrap();
    assert_ne!(again, format!("/jobs/{number}"));
    assert!(
        server
            .get(again)
            .await
            .body
            .contains("badge status-available")
    );
    let filtered = server.get("/jobs?state=cancelled").await;
    assert!(filtered.body.contains(&format!("href=\"/jobs/{number}\"")));
    assert_eq!(server.get("/jobs?state=sleepy").await.status, 400);
    server.stop().await;
}

async fn metrics_endpoint_speaks_prometheus(t: &TestDb) {
    let (fs, _) = demo(t).await;
    fs.schedule(
        "raw_events",
        flowstone::Run::partition(common::day(2024, 3, 4)).executor(flowstone::Strategy::Queue),
    )
    .await
    .unwrap();
    let server = Server::start(fs.clone(), None).await;
    // Recorded once the exporter is installed (the router installs it as it is built, in the
    // server's task: do it here so the materialization cannot come first).
    assert!(flowstone_ui::metrics::install().is_some());
    fs.materialize("settings", flowstone::Run::unpartitioned())
        .await
        .unwrap();
    let metrics = server.page("/metrics").await;
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        metrics
            .body
            .contains("flowstone_queue_jobs{queue=\"assets\",state=\"available\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("flowstone_materializations_total{asset=\"settings\",status=\"success\"}")
    );
    assert!(
        metrics
            .body
            .contains("flowstone_materialization_duration_seconds_bucket{asset=\"settings\"")
    );
    assert!(
        metrics
            .body
            .contains("# TYPE flowstone_backfill_partitions gauge")
    );
    // A worker in this process claims the queued job: its claim latency is recorded.
    let worker = fs.worker().queue("assets", 1).start().await.unwrap();
    let queue = fs.queue().unwrap();
    eventually("the worker completes the queued job", || async {
        queue.counts().await.unwrap().contains(&(
            "assets".to_owned(),
            flowstone_queue::JobState::Completed,
            1,
        ))
    })
    .await;
    let _ = worker.shutdown(std::time::Duration::from_secs(10)).await;
    let metrics = server.page("/metrics").await;
    for needle in [
        "flowstone_queue_claim_seconds_bucket{queue=\"assets\"",
        "flowstone_queue_jobs{queue=\"assets\",state=\"completed\"} 1",
        "flowstone_materializations_total{asset=\"raw_events\",status=\"success\"}",
    ] {
        assert!(
            metrics.body.contains(needle),
            "'{needle}' not in {}",
            metrics.body
        );
    }
    server.stop().await;
}

async fn token_guards_every_request(t: &TestDb) {
    let (fs, _) = demo(t).await;
    // Not on a non-loopback address without one.
    let refused = flowstone_ui::listen("0.0.0.0:0".parse().unwrap(), None).await;
    assert!(matches!(
        refused,
        Err(flowstone_ui::ServeError::TokenRequired(_))
    ));
    let message = refused.unwrap_err().to_string();
    assert!(message.contains("--token"), "{message}");
    let server = Server::start(fs, Some("s3cret-token")).await;
    let page = server.get("/").await;
    page.expect(401, "id=\"login\"");
    assert_eq!(server.get("/metrics").await.status, 401);
    assert_eq!(server.get("/assets/raw_events").await.status, 401);
    let csrf = csrf_of(&page.body);
    assert_eq!(
        server
            .post("/assets/settings/materialize", &[("csrf", &csrf)])
            .await
            .status,
        401
    );
    // The bearer header: the right one, a wrong one.
    for (header, status) in [("Bearer s3cret-token", 200), ("Bearer nope", 401)] {
        let answer =
            common::http::request(server.addr, "GET", "/", &[("Authorization", header)], None)
                .await;
        assert_eq!(answer.status, status, "{header}");
    }
    // The login form sets the cookie (and a wrong token does not).
    let bad_login = server
        .post("/login", &[("csrf", &csrf), ("token", "nope")])
        .await;
    assert_eq!(bad_login.status, 401);
    assert!(bad_login.header("set-cookie").is_none());
    let login = server
        .post("/login", &[("csrf", &csrf), ("token", "s3cret-token")])
        .await;
    assert_eq!(login.status, 303);
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let with_cookie =
        common::http::request(server.addr, "GET", "/graph", &[("Cookie", &cookie)], None).await;
    assert_eq!(with_cookie.status, 200);
    // Even signed in, an action without the CSRF token is refused.
    let no_csrf = common::http::request(
        server.addr,
        "POST",
        "/assets/settings/materialize",
        &[
            ("Cookie", &cookie),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(b"partition=-"),
    )
    .await;
    assert_eq!(no_csrf.status, 403);
    server.stop().await;
}

async fn worker_metrics_endpoint_serves_only_metrics(t: &TestDb) {
    let (fs, _) = demo(t).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(flowstone_ui::metrics::serve_metrics_on(
        fs,
        listener,
        async {
            let _ = stopped.await;
        },
    ));
    let metrics = common::http::request(addr, "GET", "/metrics", &[], None).await;
    metrics.expect(200, "# TYPE flowstone_queue_jobs gauge");
    // Nothing else: no pages, no actions.
    assert_eq!(
        common::http::request(addr, "GET", "/", &[], None)
            .await
            .status,
        404
    );
    let post = common::http::request(addr, "POST", "/assets/settings/materialize", &[], None).await;
    assert_eq!(post.status, 404);
    let _ = stop.send(());
    served.await.unwrap().unwrap();
}

/// The status string of the page's grid.
fn grid_codes(html: &str) -> String {
    let start = html.find("id=\"grid-data\">").expect("the page has a grid") + 15;
    let end = start + html[start..].find("</script>").unwrap();
    let data: serde_json::Value = serde_json::from_str(&html[start..end]).unwrap();
    let codes = data["codes"].as_str().unwrap().to_owned();
    assert_eq!(data["keys"].as_array().unwrap().len(), codes.len());
    codes
}
