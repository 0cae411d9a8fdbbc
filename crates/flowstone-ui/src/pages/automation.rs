//! `/automation`: the leader, every schedule, sensor and asset condition with its on/off
//! switch (and a schedule's next ticks), and the recent tick records.

use axum::extract::{Path, State};
use axum::response::{Html, Redirect};

use crate::auth::Action;
use crate::error::{UiError, UiResult};
use crate::html::{self, esc};
use crate::state::AppState;
use flowstone::automation::{Origin, TickQuery};

/// How many upcoming ticks each schedule shows.
const NEXT_TICKS: usize = 3;

/// How many recent ticks the page lists.
const RECENT_TICKS: usize = 50;

/// `GET /automation`.
pub(crate) async fn page(State(state): State<AppState>) -> UiResult<Html<String>> {
    let now = chrono::Utc::now();
    let status = state.fs.automation_status().await?;
    let leader = match (&status.leader, status.lease_expires_at) {
        (Some(leader), Some(until)) => format!(
            "<p id=\"leader\">Leader: <code>{}</code> (lease until {})</p>",
            esc(leader),
            esc(&html::time(until))
        ),
        _ => String::from(
            "<p id=\"leader\">No leader: start a worker with <code>--automation</code>.</p>",
        ),
    };
    let mut rows = Vec::new();
    for d in &status.definitions {
        let next = match d.origin {
            Origin::Schedule => next_ticks(&state, &d.name, now),
            _ => String::new(),
        };
        let last = d.last_tick.as_ref().map_or_else(String::new, |t| {
            format!(
                "{} {} {}",
                esc(&html::time(t.at)),
                html::badge(t.status.as_str()),
                esc(t.detail.as_deref().unwrap_or(""))
            )
        });
        let switch = format!(
            "<form method=\"post\" action=\"/automation/{}/{}\" class=\"inline\">{}\
             <input type=\"hidden\" name=\"on\" value=\"{}\">\
             <button type=\"submit\" id=\"switch-{}\">{}</button></form>",
            kind_segment(d.origin),
            html::url_segment(&d.name),
            html::csrf_field(state.csrf()),
            if d.on { "false" } else { "true" },
            esc(&d.name),
            if d.on { "Turn off" } else { "Turn on" }
        );
        rows.push(vec![
            esc(d.origin.as_str()),
            esc(&d.name),
            esc(&d.describe),
            html::badge(if d.on { "on" } else { "off" }),
            next,
            last,
            switch,
        ]);
    }
    let ticks: Vec<Vec<String>> = state
        .fs
        .ticks(&TickQuery::default().limit(RECENT_TICKS))
        .await?
        .iter()
        .map(|t| {
            vec![
                esc(&html::time(t.at)),
                esc(t.origin.as_str()),
                esc(&t.name),
                html::badge(t.status.as_str()),
                t.launched.to_string(),
                esc(t.detail.as_deref().unwrap_or("")),
                t.backfills
                    .iter()
                    .map(|id| format!("<a href=\"/backfills/{id}\">{}</a>", esc(&id.to_string())))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]
        })
        .collect();
    let body = format!(
        "<h1>Automation</h1>{leader}{}{}",
        html::section(
            "Schedules, sensors and conditions",
            &html::table(
                "schedules",
                &[
                    "kind",
                    "name",
                    "what",
                    "state",
                    "next ticks",
                    "last tick",
                    ""
                ],
                &rows,
                "no schedule, sensor or automation condition is declared"
            )
        ),
        html::section(
            "Recent ticks",
            &html::table(
                "ticks",
                &[
                    "at",
                    "kind",
                    "name",
                    "status",
                    "launched",
                    "detail",
                    "backfills"
                ],
                &ticks,
                "no tick recorded yet"
            )
        )
    );
    Ok(html::page("Automation", "/automation", &body))
}

/// The next ticks of schedule `name` and what they target.
fn next_ticks(state: &AppState, name: &str, now: chrono::DateTime<chrono::Utc>) -> String {
    match state.fs.preview_schedule(name, now, NEXT_TICKS) {
        Ok(ticks) => ticks
            .iter()
            .map(|t| {
                format!(
                    "{} → {}",
                    esc(&html::time(t.tick.at)),
                    esc(&t.partition.input_text())
                )
            })
            .collect::<Vec<_>>()
            .join("<br>"),
        Err(err) => format!(
            "<span class=\"error-text\">{}</span>",
            esc(&err.to_string())
        ),
    }
}

/// The URL segment of a kind of definition.
fn kind_segment(origin: Origin) -> &'static str {
    match origin {
        Origin::Schedule => "schedules",
        Origin::Sensor => "sensors",
        Origin::Condition => "conditions",
    }
}

/// `POST /automation/{schedules|sensors|conditions}/{name}` with `on=true|false`.
pub(crate) async fn switch(
    State(state): State<AppState>,
    Path((kind, name)): Path<(String, String)>,
    action: Action,
) -> UiResult<Redirect> {
    let on = match action.field("on") {
        Some("true") => true,
        Some("false") => false,
        other => {
            return Err(UiError::bad_request(format!(
                "field 'on' must be true or false, not '{}'",
                other.unwrap_or("")
            )));
        }
    };
    match kind.as_str() {
        "schedules" => state.fs.set_schedule_enabled(&name, on).await?,
        "sensors" => state.fs.set_sensor_enabled(&name, on).await?,
        "conditions" => state.fs.set_condition_enabled(&name, on).await?,
        other => {
            return Err(UiError::not_found(format!(
                "'{other}' is not a kind of automation (schedules, sensors, conditions)"
            )));
        }
    }
    Ok(Redirect::to("/automation"))
}
