//! The dashboard in headless Chromium (Debian's chromium and chromium-driver), against the
//! demo-like pipeline on SQLite and on PostgreSQL: the pages render, links lead where they
//! say, a backfill started from the page runs while its progress updates live, cancel works,
//! the 100 000-partition grid draws and opens a partition on click, and actions without the
//! CSRF token or without the access token are refused. Screenshots of the overview, the graph
//! and the 100k grid are saved under `target/flowstone-ui-screenshots/` (the test prints the
//! paths).
//!
//! One test binary for the whole browser suite, so CI starts Chromium twice (one per engine).
//! Without Chromium: under `CI=true` this fails; otherwise it prints that it skipped.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::{BIG, Server, demo, fill_big};
use flowstone_queue::testing::TestDb;
use serde_json::json;
use webdriver::Browser;

flowstone_queue::both_engines!(tour);

// Each step is boxed: the whole tour as one future overflows a test thread's stack in debug
// builds.
async fn tour(t: &TestDb) {
    if !webdriver::browser_available() {
        return;
    }
    let engine = format!("{:?}", t.engine()).to_lowercase();
    let (fs, delay) = Box::pin(demo(t)).await;
    Box::pin(fill_big(&fs)).await;
    let server = Server::start(fs.clone(), None).await;
    let browser = Browser::start(1400, 1000).await;

    Box::pin(overview_and_links(&browser, &server, &engine)).await;
    Box::pin(graph(&browser, &server, &engine)).await;
    Box::pin(big_grid(&browser, &server, &engine)).await;
    delay.set(120);
    Box::pin(backfill_with_live_progress(&browser, &server)).await;
    delay.set(400);
    Box::pin(cancel_a_backfill(&browser, &server)).await;
    delay.set(0);
    Box::pin(csrf_is_required(&browser, &server)).await;
    browser.quit().await;
    server.stop().await;

    Box::pin(token_login(&fs)).await;
}

async fn overview_and_links(browser: &Browser, server: &Server, engine: &str) {
    browser.goto(&server.url("/")).await;
    assert!(browser.title().await.starts_with("Overview"));
    let assets = browser.find_all("a.asset-link").await;
    assert_eq!(assets.len(), 5, "every asset is listed");
    let failures = browser.text_of("#failures").await;
    // The newest failures are the big asset's (recorded last), with their error text.
    assert!(failures.contains("sensor offline"), "{failures}");
    browser.screenshot(&format!("overview-{engine}")).await;
    // The asset link leads to the asset's page.
    let raw = browser
        .find("a.asset-link[href='/assets/raw_events']")
        .await;
    browser.click(&raw).await;
    browser.wait_for_url("/assets/raw_events").await;
    assert_eq!(browser.text_of("#asset-name").await, "raw_events");
    // A failure's link leads to the partition with its error.
    browser.goto(&server.url("/")).await;
    let failure = browser.find("#failures a").await;
    let href = browser.attribute(&failure, "href").await.unwrap();
    browser.click(&failure).await;
    browser.wait_for_url(&href).await;
    assert!(
        browser
            .text_of("#materializations")
            .await
            .contains("sensor offline")
    );
    // Every navigation link works.
    for (path, title) in [
        ("/jobs", "Jobs"),
        ("/backfills", "Backfills"),
        ("/automation", "Automation"),
    ] {
        let link = browser.find(&format!("header nav a[href='{path}']")).await;
        browser.click(&link).await;
        browser.wait_for_url(path).await;
        assert!(browser.title().await.starts_with(title));
    }
    assert!(browser.text_of("#schedules").await.contains("nightly_raw"));
}

async fn graph(browser: &Browser, server: &Server, engine: &str) {
    browser.goto(&server.url("/graph")).await;
    let svg = browser.find("#asset-graph").await;
    let width: f64 = browser
        .attribute(&svg, "width")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(width > 500.0, "three columns wide");
    assert_eq!(browser.find_all("#asset-graph a.node").await.len(), 5);
    browser.screenshot(&format!("graph-{engine}")).await;
    let node = browser
        .find("#asset-graph a.node[data-asset='monthly_summary'] text")
        .await;
    browser.click(&node).await;
    browser.wait_for_url("/assets/monthly_summary").await;
}

async fn big_grid(browser: &Browser, server: &Server, engine: &str) {
    browser.resize(1400, 2400).await;
    browser.goto(&server.url(&format!("/assets/{BIG}"))).await;
    let canvas = browser.find("#partition-grid").await;
    assert_eq!(
        browser.attribute(&canvas, "data-drawn").await.as_deref(),
        Some("100000")
    );
    assert_eq!(browser.text_of("#count-failed").await, "1030");
    browser.screenshot(&format!("grid-100k-{engine}")).await;
    // Hover names the partition; a click on the first cell opens it.
    browser.click_at(&canvas, 2, 2).await;
    browser.wait_for_url("/partitions/1800-01-01").await;
    assert_eq!(browser.text_of("#partition-key").await, "1800-01-01");
    browser.resize(1400, 1000).await;
    // The status filter narrows the grid.
    browser
        .goto(&server.url(&format!("/assets/{BIG}?status=failed")))
        .await;
    let canvas = browser.find("#partition-grid").await;
    assert_eq!(
        browser.attribute(&canvas, "data-drawn").await.as_deref(),
        Some("1030")
    );
}

async fn backfill_with_live_progress(browser: &Browser, server: &Server) {
    browser.goto(&server.url("/assets/raw_events")).await;
    let from = browser.find("#backfill-from").await;
    browser.type_into(&from, "2024-02-01").await;
    let to = browser.find("#backfill-to").await;
    browser.type_into(&to, "2024-02-29").await;
    let button = browser.find("#backfill").await;
    browser.click(&button).await;
    browser.wait_for_url("/backfills/").await;
    // Without reloading, the page's progress moves and ends at 29/29.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let text = browser.text_of("#bf-progress .progress-text").await;
        if seen.last() != Some(&text) {
            seen.push(text.clone());
        }
        let status = browser.text_of("#bf-status").await;
        if status == "completed_with_failures" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backfill did not finish: {seen:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert_eq!(
        browser.text_of("#bf-progress .progress-text").await,
        "29/29"
    );
    assert!(
        seen.iter()
            .any(|s| s != "29/29" && s != "0/29" && s.ends_with("/29")),
        "an intermediate count was shown live: {seen:?}"
    );
    let live = browser.find("#backfill-live").await;
    let updates: u32 = browser
        .attribute(&live, "data-updates")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(updates >= 2, "{updates} updates");
    assert!(browser.text_of("#bf-counts").await.contains("2 failed"));
}

async fn cancel_a_backfill(browser: &Browser, server: &Server) {
    browser.goto(&server.url("/assets/raw_events")).await;
    let from = browser.find("#backfill-from").await;
    browser.type_into(&from, "2024-03-01").await;
    let button = browser.find("#backfill").await;
    browser.click(&button).await;
    browser.wait_for_url("/backfills/").await;
    let page = browser.url().await;
    let cancel = browser.find("#cancel-backfill").await;
    browser.click(&cancel).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if browser.text_of("#bf-status").await == "cancelled" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backfill was not cancelled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // Ended partitions count cancelled ones too: some were stopped before they ran.
    let counts = browser.text_of("#bf-counts").await;
    let cancelled: usize = counts
        .split(", ")
        .find_map(|part| part.strip_suffix(" cancelled"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no cancelled count in '{counts}'"));
    assert!(cancelled > 0, "some partitions were cancelled: {counts}");
    // An ended backfill offers no cancel any more.
    browser.goto(&page).await;
    assert!(browser.find_all("#cancel-backfill").await.is_empty());
}

async fn csrf_is_required(browser: &Browser, server: &Server) {
    browser.goto(&server.url("/assets/settings")).await;
    let post = "const done = arguments[arguments.length - 1];
        fetch(arguments[0], {method: 'POST', body: new URLSearchParams(arguments[1])})
            .then(r => done(r.status), e => done(String(e)));";
    let without = browser
        .execute_async(
            post,
            json!(["/assets/settings/materialize", {"partition": "-"}]),
        )
        .await;
    assert_eq!(without, 403, "a POST without the CSRF token is refused");
    let csrf = browser
        .execute(
            "return document.querySelector('input[name=csrf]').value",
            json!([]),
        )
        .await;
    let with = browser
        .execute_async(
            post,
            json!(["/assets/settings/materialize", {"partition": "-", "csrf": csrf}]),
        )
        .await;
    assert_eq!(
        with, 200,
        "the same POST with the page's token is accepted (and redirected)"
    );
}

/// A server that needs a token (as on any non-loopback address): the browser gets the login
/// form, and after signing in the pages; a POST without the token is refused.
async fn token_login(fs: &flowstone::FlowStone) {
    let server = Server::start(fs.clone(), Some("browser-token")).await;
    let browser = Browser::start(1200, 900).await;
    browser.goto(&server.url("/")).await;
    let token = browser.find("#token").await;
    assert!(
        browser.find_all("#assets").await.is_empty(),
        "nothing shown before signing in"
    );
    browser.type_into(&token, "wrong").await;
    let submit = browser.find("#login button").await;
    browser.click(&submit).await;
    browser.text_containing("main", "not right").await;
    let token = browser.find("#token").await;
    browser.type_into(&token, "browser-token").await;
    let submit = browser.find("#login button").await;
    browser.click(&submit).await;
    browser.find("#assets").await;
    assert!(browser.title().await.starts_with("Overview"));
    browser.quit().await;
    let refused = server.post("/assets/settings/materialize", &[]).await;
    assert_eq!(refused.status, 401, "without the token");
    server.stop().await;
}
