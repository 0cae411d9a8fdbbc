//! `/backfills`: the stored backfills of every process on the database; `/backfills/{id}`: one
//! with live progress (server-sent events from [`crate::sse`]), its partitions' outcomes, and
//! cancel and resume.

use axum::extract::{Path, State};
use axum::response::{Html, Redirect};
use flowstone::BackfillId;
use flowstone::backfill::{BackfillRecord, StoredSource};

use crate::auth::Action;
use crate::error::{UiError, UiResult};
use crate::html::{self, esc};
use crate::state::AppState;

/// How many backfills the list shows, and how many outcomes the detail.
const LIST_LIMIT: usize = 100;
const OUTCOMES: usize = 200;

/// A backfill id from a URL.
pub(crate) fn backfill_id(input: &str) -> UiResult<BackfillId> {
    uuid::Uuid::parse_str(input).map(BackfillId).map_err(|_| {
        UiError::not_found(format!(
            "malformed backfill id '{input}': expected a UUID like \
                 0193a5c2-7d1e-7b3a-9f00-2c4d5e6f7a8b"
        ))
    })
}

/// A progress bar: `done` of `total`, with the count in text too.
pub(crate) fn progress_bar(done: usize, total: usize) -> String {
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    format!(
        "<span class=\"progress\"><span class=\"bar\" style=\"width:{percent}%\"></span></span> \
         <span class=\"progress-text\">{done}/{total}</span>"
    )
}

fn source_text(record: &BackfillRecord) -> String {
    match &record.request.source {
        StoredSource::All => String::from("all partitions"),
        StoredSource::Range { from, to } => format!("{from} to {to}"),
        StoredSource::Partitions(list) => format!("{} partitions", list.len()),
    }
}

/// `GET /backfills`.
pub(crate) async fn list(State(state): State<AppState>) -> UiResult<Html<String>> {
    let records = state.fs.backfills(LIST_LIMIT).await?;
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|b| {
            vec![
                format!(
                    "<a href=\"/backfills/{0}\" class=\"backfill-link\">{0}</a>",
                    esc(&b.id.to_string())
                ),
                esc(&b.request.selection),
                esc(&source_text(b)),
                html::badge(b.status.as_str()),
                progress_bar(b.counts.done(), b.counts.total),
                esc(&html::time(b.created_at)),
            ]
        })
        .collect();
    let body = format!(
        "<h1>Backfills</h1>{}",
        html::table(
            "backfills",
            &[
                "backfill",
                "selection",
                "partitions",
                "status",
                "progress",
                "created"
            ],
            &rows,
            "no backfills yet"
        )
    );
    Ok(html::page("Backfills", "/backfills", &body))
}

/// `GET /backfills/{id}`.
pub(crate) async fn detail(
    State(state): State<AppState>,
    Path(input): Path<String>,
) -> UiResult<Html<String>> {
    let id = backfill_id(&input)?;
    let (record, outcomes) = state.fs.backfill_status(id, None, OUTCOMES).await?;
    let c = &record.counts;
    let fields = vec![
        vec!["selection".into(), esc(&record.request.selection)],
        vec!["partitions".into(), esc(&source_text(&record))],
        vec![
            "status".into(),
            format!(
                "<span id=\"bf-status\">{}</span>",
                html::badge(record.status.as_str())
            ),
        ],
        vec![
            "progress".into(),
            format!(
                "<span id=\"bf-progress\">{}</span>",
                progress_bar(c.done(), c.total)
            ),
        ],
        vec![
            "outcomes".into(),
            format!(
                "<span id=\"bf-counts\">{} succeeded, {} failed, {} skipped, {} cancelled, \
                 {} upstream failed</span>",
                c.succeeded, c.failed, c.skipped, c.cancelled, c.upstream_failed
            ),
        ],
        vec!["created".into(), esc(&html::time(record.created_at))],
        vec![
            "finished".into(),
            esc(&html::time_or_dash(record.finished_at)),
        ],
        vec!["run by".into(), esc(record.owner.as_deref().unwrap_or("-"))],
    ];
    let rows: Vec<Vec<String>> = outcomes
        .iter()
        .map(|o| {
            vec![
                format!(
                    "<a href=\"{}\">{} {}</a>",
                    esc(&html::partition_href(&o.asset, &o.partition)),
                    esc(&o.asset),
                    esc(&o.partition.input_text())
                ),
                html::badge(&o.outcome),
                format!(
                    "<span class=\"error-text\">{}</span>",
                    esc(o.error.as_deref().unwrap_or(""))
                ),
            ]
        })
        .collect();
    let mut buttons = String::new();
    if !record.status.is_finished() {
        let href = format!("/backfills/{id}");
        buttons.push_str(&html::action_button(
            &format!("{href}/cancel"),
            "Cancel",
            state.csrf(),
            "cancel-backfill",
        ));
        buttons.push_str(&html::action_button(
            &format!("{href}/resume"),
            "Resume (after its process died)",
            state.csrf(),
            "resume-backfill",
        ));
    }
    let body = format!(
        "<h1>Backfill <span id=\"backfill-id\">{}</span></h1>\
         <div id=\"backfill-live\" data-events=\"/backfills/{0}/events\">{}</div>\
         <section>{buttons}</section>\
         <section><h2>Partitions ended (first {OUTCOMES})</h2>{}</section>",
        esc(&id.to_string()),
        html::table("backfill", &["", ""], &fields, ""),
        html::table(
            "outcomes",
            &["partition", "outcome", "error"],
            &rows,
            "none ended yet"
        ),
    );
    Ok(html::page("Backfill", "/backfills", &body))
}

/// `POST /backfills/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Path(input): Path<String>,
    _action: Action,
) -> UiResult<Redirect> {
    let id = backfill_id(&input)?;
    state.fs.cancel_backfill(id).await?;
    Ok(Redirect::to(&format!("/backfills/{id}")))
}

/// `POST /backfills/{id}/resume`: runs the stored request again in this process, in the
/// background (an ended backfill is refused here, before anything starts).
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(input): Path<String>,
    _action: Action,
) -> UiResult<Redirect> {
    let id = backfill_id(&input)?;
    let (record, _) = state.fs.backfill_status(id, None, 0).await?;
    if record.status.is_finished() {
        return Err(UiError::conflict(format!(
            "backfill {id} has already ended ({}); start a new one from the asset's page",
            record.status
        )));
    }
    let fs = state.fs.clone();
    tokio::spawn(async move {
        if let Err(err) = fs.resume_backfill(id).await {
            tracing::warn!(backfill = %id, error = %err, "resumed backfill failed");
        }
    });
    Ok(Redirect::to(&format!("/backfills/{id}")))
}
