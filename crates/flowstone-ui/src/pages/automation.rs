//! `/automation`: the declared schedules with their on/off switch and next ticks, and the
//! place where sensors and tick history will go.

use axum::extract::{Path, State};
use axum::response::{Html, Redirect};

use crate::auth::Action;
use crate::error::{UiError, UiResult};
use crate::html::{self, esc};
use crate::state::AppState;

/// How many upcoming ticks each schedule shows.
const NEXT_TICKS: usize = 3;

/// `GET /automation`.
pub(crate) async fn page(State(state): State<AppState>) -> UiResult<Html<String>> {
    let now = chrono::Utc::now();
    let mut rows = Vec::new();
    for schedule in state.fs.schedules() {
        let name = schedule.name();
        let on = state.fs.schedule_enabled(name).await?;
        let ticks = match state.fs.preview_schedule(name, now, NEXT_TICKS) {
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
        };
        let switch = format!(
            "<form method=\"post\" action=\"/automation/schedules/{}\" class=\"inline\">{}\
             <input type=\"hidden\" name=\"on\" value=\"{}\">\
             <button type=\"submit\" id=\"switch-{}\">{}</button></form>",
            html::url_segment(name),
            html::csrf_field(state.csrf()),
            if on { "false" } else { "true" },
            esc(name),
            if on { "Turn off" } else { "Turn on" }
        );
        rows.push(vec![
            esc(name),
            format!(
                "<code>{}</code> ({})",
                esc(schedule.expression()),
                esc(schedule.zone_name())
            ),
            esc(schedule.selection()),
            html::badge(if on { "on" } else { "off" }),
            ticks,
            switch,
        ]);
    }
    let body = format!(
        "<h1>Automation</h1><section><h2>Schedules</h2>{}</section>\
         <section id=\"ticks\" class=\"placeholder\"><h2>Sensors and tick history</h2>\
         <p>Sensors, automation conditions and the record of each evaluation (launched, skipped \
         with a reason, failed) are being added to FlowStone; they will be listed here.</p></section>",
        html::table(
            "schedules",
            &["schedule", "cron", "target", "state", "next ticks", ""],
            &rows,
            "no schedules declared"
        )
    );
    Ok(html::page("Automation", "/automation", &body))
}

/// `POST /automation/schedules/{name}` with `on=true|false`.
pub(crate) async fn switch(
    State(state): State<AppState>,
    Path(name): Path<String>,
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
    state.fs.set_schedule_enabled(&name, on).await?;
    Ok(Redirect::to("/automation"))
}
