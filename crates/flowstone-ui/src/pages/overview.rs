//! `/`: every asset with its newest status, recent failures with their error text, running
//! jobs, active backfills with progress, and the queue's depth by state.
//!
//! Each figure is one bounded query (a `LIMIT`ed list, a `GROUP BY`), so the page costs the
//! same over a thousand records or a million.

use axum::extract::State;
use axum::response::Html;
use flowstone::store::{MaterializationQuery, MaterializationStatus};
use flowstone_queue::{JobFilter, JobState};

use super::{error_text, job_target, newest_record};
use crate::error::UiResult;
use crate::html::{self, esc};
use crate::state::AppState;

/// How many failures and running jobs the overview lists.
const RECENT: usize = 10;

/// `GET /`.
pub(crate) async fn page(State(state): State<AppState>) -> UiResult<Html<String>> {
    let mut body = String::from("<h1>Overview</h1>");
    body.push_str(&assets_section(&state).await?);
    body.push_str(&failures_section(&state).await?);
    body.push_str(&backfills_section(&state).await?);
    body.push_str(&queue_section(&state).await?);
    Ok(html::page("Overview", "/", &body))
}

async fn assets_section(state: &AppState) -> UiResult<String> {
    let mut rows = Vec::new();
    for name in state.fs.registry().topological_order() {
        let newest = newest_record(state, name).await?;
        let (status, partition, when) = match &newest {
            Some(m) => (
                html::badge(m.status.as_str()),
                format!(
                    "<a href=\"{}\">{}</a>",
                    esc(&html::partition_href(name, &m.partition)),
                    esc(&m.partition.input_text())
                ),
                esc(&html::time(m.started_at)),
            ),
            None => (html::badge("missing"), String::from("-"), String::from("-")),
        };
        rows.push(vec![
            format!(
                "<a href=\"{}\" class=\"asset-link\">{}</a>",
                esc(&html::asset_href(name)),
                esc(name)
            ),
            status,
            partition,
            when,
        ]);
    }
    Ok(html::section(
        "Assets",
        &html::table(
            "assets",
            &["asset", "latest status", "partition", "started"],
            &rows,
            "no assets declared",
        ),
    ))
}

async fn failures_section(state: &AppState) -> UiResult<String> {
    let query = MaterializationQuery {
        status: Some(MaterializationStatus::Failed),
        limit: Some(RECENT),
        ..MaterializationQuery::default()
    };
    let failures = state.fs.runtime().store().list(&query).await?;
    let rows: Vec<Vec<String>> = failures
        .iter()
        .map(|m| {
            vec![
                format!(
                    "<a href=\"{}\">{} {}</a>",
                    esc(&html::partition_href(&m.asset, &m.partition)),
                    esc(&m.asset),
                    esc(&m.partition.input_text())
                ),
                esc(&html::time(m.started_at)),
                format!("<span class=\"error-text\">{}</span>", esc(&error_text(m))),
            ]
        })
        .collect();
    Ok(html::section(
        "Recent failures",
        &html::table(
            "failures",
            &["materialization", "started", "error"],
            &rows,
            "no failures",
        ),
    ))
}

async fn backfills_section(state: &AppState) -> UiResult<String> {
    let active: Vec<_> = state
        .fs
        .backfills(50)
        .await?
        .into_iter()
        .filter(|b| !b.status.is_finished())
        .collect();
    let rows: Vec<Vec<String>> = active
        .iter()
        .map(|b| {
            vec![
                format!("<a href=\"/backfills/{0}\">{0}</a>", esc(&b.id.to_string())),
                esc(&b.request.selection),
                html::badge(b.status.as_str()),
                super::backfills::progress_bar(b.counts.done(), b.counts.total),
            ]
        })
        .collect();
    Ok(html::section(
        "Active backfills",
        &html::table(
            "active-backfills",
            &["backfill", "selection", "status", "progress"],
            &rows,
            "no backfill is running",
        ),
    ))
}

async fn queue_section(state: &AppState) -> UiResult<String> {
    let Some(queue) = state.queue() else {
        return Ok(html::section(
            "Queue",
            "<p class=\"empty\">no database-backed queue</p>",
        ));
    };
    let depth: Vec<Vec<String>> = queue
        .counts()
        .await?
        .into_iter()
        .map(|(q, s, n)| {
            vec![
                format!(
                    "<a href=\"/jobs?queue={}&amp;state={}\">{}</a>",
                    html::url_segment(&q),
                    s.as_str(),
                    esc(&q)
                ),
                html::badge(s.as_str()),
                n.to_string(),
            ]
        })
        .collect();
    let running = queue
        .list(&JobFilter {
            state: Some(JobState::Executing),
            limit: Some(RECENT as i64),
            ..JobFilter::default()
        })
        .await?;
    let running: Vec<Vec<String>> = running
        .iter()
        .map(|job| {
            let (asset, partition) = job_target(job);
            vec![
                format!("<a href=\"/jobs/{0}\">{0}</a>", job.id),
                esc(asset.as_deref().unwrap_or(&job.kind)),
                esc(&partition
                    .as_ref()
                    .map(flowstone::Partition::input_text)
                    .unwrap_or_default()),
                esc(job.node.as_deref().unwrap_or("-")),
                esc(&html::time_or_dash(job.attempted_at)),
            ]
        })
        .collect();
    let running = html::table(
        "running-jobs",
        &["job", "asset", "partition", "node", "started"],
        &running,
        "no job is running",
    );
    let depth = html::table(
        "queue-depth",
        &["queue", "state", "jobs"],
        &depth,
        "the queue is empty",
    );
    Ok(html::section("Running jobs", &running) + &html::section("Queue depth", &depth))
}
