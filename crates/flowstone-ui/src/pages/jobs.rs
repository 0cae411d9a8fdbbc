//! `/jobs`: the durable queue's jobs by queue and state; `/jobs/{id}`: one job with each
//! attempt's error, its node and times; cancel and retry.

use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use flowstone::{Run, Strategy};
use flowstone_queue::{Job, JobFilter, JobState, Queue};
use serde::Deserialize;

use super::{job_target, queue_error_text};
use crate::auth::Action;
use crate::error::{UiError, UiResult};
use crate::html::{self, esc};
use crate::state::AppState;

/// The states, in the filter's order.
const STATES: [&str; 7] = [
    "available",
    "scheduled",
    "executing",
    "retryable",
    "completed",
    "discarded",
    "cancelled",
];

/// How many jobs the list shows.
const LIST_LIMIT: i64 = 200;

/// The list's filters.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct JobsQuery {
    queue: Option<String>,
    state: Option<String>,
}

fn queue_of(state: &AppState) -> UiResult<Queue> {
    state.queue().ok_or_else(|| {
        UiError::not_found("this FlowStone has no database-backed queue, so it has no jobs")
    })
}

/// A job id from a URL: the queue's job number.
fn job_id(input: &str) -> UiResult<i64> {
    input.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        UiError::not_found(format!(
            "malformed job id '{input}': expected the queue's job number, like 42"
        ))
    })
}

/// `GET /jobs`.
pub(crate) async fn list(
    State(state): State<AppState>,
    Query(query): Query<JobsQuery>,
) -> UiResult<Html<String>> {
    let queue = queue_of(&state)?;
    let state_filter = match query.state.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| {
            UiError::bad_request(format!(
                "unknown job state '{s}': expected one of {}",
                STATES.join(", ")
            ))
        })?),
    };
    let queue_filter = query.queue.clone().filter(|q| !q.is_empty());
    let jobs = queue
        .list(&JobFilter {
            queue: queue_filter.clone(),
            state: state_filter,
            limit: Some(LIST_LIMIT),
            ..JobFilter::default()
        })
        .await?;
    let rows: Vec<Vec<String>> = jobs.iter().map(job_row).collect();
    let mut options = String::from("<option value=\"\">any state</option>");
    for s in STATES {
        let selected = if query.state.as_deref() == Some(s) {
            " selected"
        } else {
            ""
        };
        options.push_str(&format!("<option value=\"{s}\"{selected}>{s}</option>"));
    }
    let body = format!(
        "<h1>Jobs</h1><form method=\"get\" class=\"filters\">\
         <input name=\"queue\" placeholder=\"queue\" value=\"{}\">\
         <select name=\"state\">{options}</select><button type=\"submit\">Filter</button></form>{}",
        esc(queue_filter.as_deref().unwrap_or("")),
        html::table(
            "jobs",
            &[
                "job",
                "state",
                "queue",
                "asset",
                "partition",
                "attempt",
                "node",
                "scheduled",
                "last error"
            ],
            &rows,
            "no jobs"
        )
    );
    Ok(html::page("Jobs", "/jobs", &body))
}

fn job_row(job: &Job) -> Vec<String> {
    let (asset, partition) = job_target(job);
    vec![
        format!("<a href=\"/jobs/{0}\">{0}</a>", job.id),
        html::badge(job.state.as_str()),
        esc(&job.queue),
        esc(asset.as_deref().unwrap_or(&job.kind)),
        esc(&partition
            .as_ref()
            .map(flowstone::Partition::input_text)
            .unwrap_or_default()),
        format!("{}/{}", job.attempt, job.max_attempts),
        esc(job.node.as_deref().unwrap_or("-")),
        esc(&html::time_or_dash(job.scheduled_at)),
        format!(
            "<span class=\"error-text\">{}</span>",
            esc(&job
                .errors
                .last()
                .map(|e| queue_error_text(&e.error))
                .unwrap_or_default())
        ),
    ]
}

/// `GET /jobs/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    Path(input): Path<String>,
) -> UiResult<Html<String>> {
    let id = job_id(&input)?;
    let job = queue_of(&state)?.get(id).await?;
    let (asset, partition) = job_target(&job);
    let target = match (&asset, &partition) {
        (Some(a), Some(p)) => format!(
            "<a href=\"{}\">{} {}</a>",
            esc(&html::partition_href(a, p)),
            esc(a),
            esc(&p.input_text())
        ),
        _ => esc(&job.kind),
    };
    let ended = job.completed_at.or(job.cancelled_at).or(job.discarded_at);
    let fields = vec![
        vec!["state".into(), html::badge(job.state.as_str())],
        vec!["materializes".into(), target],
        vec!["queue".into(), esc(&job.queue)],
        vec!["priority".into(), job.priority.to_string()],
        vec![
            "attempt".into(),
            format!("{} of {}", job.attempt, job.max_attempts),
        ],
        vec!["node".into(), esc(job.node.as_deref().unwrap_or("-"))],
        vec!["inserted".into(), esc(&html::time_or_dash(job.inserted_at))],
        vec![
            "scheduled".into(),
            esc(&html::time_or_dash(job.scheduled_at)),
        ],
        vec![
            "attempted".into(),
            esc(&html::time_or_dash(job.attempted_at)),
        ],
        vec!["finished".into(), esc(&html::time_or_dash(ended))],
        vec!["backfill".into(), esc(job.batch.as_deref().unwrap_or("-"))],
    ];
    let attempts: Vec<Vec<String>> = job
        .errors
        .iter()
        .map(|e| {
            vec![
                e.attempt.to_string(),
                esc(&e.at),
                format!(
                    "<span class=\"error-text\">{}</span>",
                    esc(&queue_error_text(&e.error))
                ),
            ]
        })
        .collect();
    let mut buttons = String::new();
    if !job.state.is_final() {
        buttons.push_str(&html::action_button(
            &format!("/jobs/{id}/cancel"),
            "Cancel",
            state.csrf(),
            "cancel-job",
        ));
    }
    if asset.is_some() && matches!(job.state, JobState::Discarded | JobState::Cancelled) {
        buttons.push_str(&html::action_button(
            &format!("/jobs/{id}/retry"),
            "Retry",
            state.csrf(),
            "retry-job",
        ));
    }
    let body = format!(
        "<h1>Job <span id=\"job-id\">{id}</span></h1>{}<section><h2>Failed attempts</h2>{}</section>\
         <section>{buttons}</section>",
        html::table("job", &["", ""], &fields, ""),
        html::table(
            "attempts",
            &["attempt", "at", "error"],
            &attempts,
            "no failed attempt"
        ),
    );
    Ok(html::page(&format!("Job {id}"), "/jobs", &body))
}

/// `POST /jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(input): Path<String>,
    _action: Action,
) -> UiResult<Redirect> {
    let id = job_id(&input)?;
    queue_of(&state)?.cancel(id).await?;
    Ok(Redirect::to(&format!("/jobs/{id}")))
}

/// `POST /jobs/{id}/retry`: a new job for the same asset and partition (the queue keeps the
/// old one as it ended), then that job's page.
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path(input): Path<String>,
    _action: Action,
) -> UiResult<Redirect> {
    let id = job_id(&input)?;
    let job = queue_of(&state)?.get(id).await?;
    let (Some(asset), Some(partition)) = job_target(&job) else {
        return Err(UiError::bad_request(format!(
            "job {id} is not a FlowStone materialization, so there is nothing to retry"
        )));
    };
    let scheduled = state
        .fs
        .schedule(&asset, Run::partition(partition).executor(Strategy::Queue))
        .await?;
    let number = scheduled
        .metadata
        .get(flowstone::queue::QUEUE_JOB_ID)
        .and_then(serde_json::Value::as_i64);
    Ok(Redirect::to(&match number {
        Some(n) => format!("/jobs/{n}"),
        None => String::from("/jobs"),
    }))
}
