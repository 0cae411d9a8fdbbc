//! `/assets/{asset}`: the definition, the partition status grid with its filters, and the
//! materialize and backfill actions.

use std::fmt::Write as _;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use flowstone::{Asset, Backfill, Partition, Run};
use serde::Deserialize;

use super::{find_asset, parse_partition};
use crate::auth::Action;
use crate::error::{UiError, UiResult};
use crate::grid::{self, Cell, Filter};
use crate::html::{self, esc};
use crate::state::AppState;

/// The grid's filters, from the query string.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct GridQuery {
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// `GET /assets/{asset}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(query): Query<GridQuery>,
) -> UiResult<Html<String>> {
    let asset = find_asset(&state, &name)?;
    let mut body = format!(
        "<h1>Asset <span id=\"asset-name\">{}</span></h1>",
        esc(asset.name())
    );
    body.push_str(&definition(&asset));
    let partitions = match asset.partitions() {
        Some(def) => def.partitions()?,
        None => vec![Partition::Unpartitioned],
    };
    let filter = grid_filter(&asset, &partitions, &query)?;
    let latest = state
        .fs
        .runtime()
        .store()
        .latest_statuses(asset.name())
        .await?;
    let grid = grid::build(&partitions, latest, filter);
    body.push_str(&grid_section(&asset, &grid, &query, partitions.len()));
    body.push_str(&actions(&state, &asset));
    Ok(html::page(asset.name(), "", &body))
}

/// The definition: what the asset is and how it runs.
fn definition(asset: &Asset) -> String {
    let retry = asset.retry_policy();
    let mut rows = vec![
        vec![
            "description".into(),
            esc(asset.description_text().unwrap_or("-")),
        ],
        vec![
            "partitions".into(),
            esc(&asset
                .partitions()
                .map_or_else(|| String::from("unpartitioned"), |d| d.expected_form())),
        ],
        vec!["retry policy".into(), esc(&retry_text(&retry))],
        vec![
            "executor".into(),
            esc(asset.default_executor().unwrap_or("auto (the default)")),
        ],
        vec![
            "IO manager".into(),
            esc(asset.io_manager_name().unwrap_or("default")),
        ],
        vec![
            "resources".into(),
            esc(&join_or_dash(
                asset.required_resources().iter().map(String::as_str),
            )),
        ],
        vec![
            "tags".into(),
            esc(&join_or_dash(
                asset
                    .tags()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str),
            )),
        ],
    ];
    let mut deps = String::new();
    for dep in asset.dependencies() {
        let _ = write!(
            deps,
            "<a href=\"{}\">{}</a> ",
            esc(&html::asset_href(dep)),
            esc(&asset.dependency_label(dep))
        );
    }
    rows.push(vec![
        "depends on".into(),
        if deps.is_empty() { "-".into() } else { deps },
    ]);
    html::section(
        "Definition",
        &html::table("definition", &["", ""], &rows, ""),
    )
}

/// `3 attempts, waiting about 50 ms, 100 ms between them` (the first waits; jitter aside).
fn retry_text(retry: &flowstone::RetryPolicy) -> String {
    if retry.max_attempts <= 1 {
        return String::from("1 attempt (no retries)");
    }
    let waits: Vec<String> = (1..retry.max_attempts.min(4))
        .map(|attempt| html::duration(retry.delay_after(attempt)))
        .collect();
    let more = if retry.max_attempts > 4 { ", ..." } else { "" };
    format!(
        "{} attempts, waiting about {}{more} between them",
        retry.max_attempts,
        waits.join(", ")
    )
}

fn join_or_dash<'a>(items: impl Iterator<Item = &'a str>) -> String {
    let joined = items.collect::<Vec<_>>().join(", ");
    if joined.is_empty() {
        String::from("-")
    } else {
        joined
    }
}

/// The grid's filter from the query: a status name and the range's ends as partitions.
fn grid_filter(asset: &Asset, partitions: &[Partition], query: &GridQuery) -> UiResult<Filter> {
    let status = match query.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Cell::parse(s).ok_or_else(|| {
            UiError::bad_request(format!(
                "unknown status filter '{s}': expected missing, running, success, failed or cancelled"
            ))
        })?),
    };
    let position = |input: Option<&str>| -> UiResult<Option<usize>> {
        let Some(input) = input.filter(|s| !s.is_empty()) else {
            return Ok(None);
        };
        let partition = parse_partition(asset, input)
            .map_err(|e| UiError::bad_request(e.message().to_owned()))?;
        Ok(partitions.iter().position(|p| *p == partition))
    };
    Ok(Filter {
        status,
        from: position(query.from.as_deref())?,
        to: position(query.to.as_deref())?,
    })
}

fn grid_section(asset: &Asset, grid: &grid::Grid, query: &GridQuery, total: usize) -> String {
    let mut legend = String::new();
    for cell in Cell::ALL {
        let _ = write!(
            legend,
            "<span class=\"legend-item\"><span class=\"swatch cell-{0}\"></span>{0} \
             <b id=\"count-{0}\">{1}</b></span>",
            cell.name(),
            grid.counts.get(&cell).copied().unwrap_or(0)
        );
    }
    let mut options = String::from("<option value=\"\">any status</option>");
    for cell in Cell::ALL {
        let selected = if query.status.as_deref() == Some(cell.name()) {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            options,
            "<option value=\"{0}\"{selected}>{0}</option>",
            cell.name()
        );
    }
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or(""));
    format!(
        "<section><h2>Partitions</h2><p>{total} partitions; showing <b id=\"shown\">{}</b>. {legend}</p>\
         <form method=\"get\" class=\"filters\" id=\"grid-filter\">\
         <select name=\"status\" id=\"filter-status\">{options}</select>\
         <input name=\"from\" id=\"filter-from\" placeholder=\"from\" value=\"{}\">\
         <input name=\"to\" id=\"filter-to\" placeholder=\"to\" value=\"{}\">\
         <button type=\"submit\">Filter</button></form>{}</section>",
        grid.keys.len(),
        value(&query.from),
        value(&query.to),
        grid::render(asset.name(), grid)
    )
}

fn actions(state: &AppState, asset: &Asset) -> String {
    let href = html::asset_href(asset.name());
    let csrf = html::csrf_field(state.csrf());
    let partition_input = if asset.partitions().is_some() {
        "<input name=\"partition\" id=\"materialize-partition\" placeholder=\"partition\" required>"
    } else {
        ""
    };
    let range = if asset.partitions().is_some() {
        "<input name=\"from\" id=\"backfill-from\" placeholder=\"from (blank: first)\">\
         <input name=\"to\" id=\"backfill-to\" placeholder=\"to (blank: last)\">"
    } else {
        ""
    };
    format!(
        "<section><h2>Run</h2>\
         <form method=\"post\" action=\"{0}/materialize\" id=\"materialize-form\">{csrf}{partition_input}\
         <button type=\"submit\" id=\"materialize\">Materialize</button></form>\
         <form method=\"post\" action=\"{0}/backfill\" id=\"backfill-form\">{csrf}{range}\
         <label><input type=\"checkbox\" name=\"retry_failed\" value=\"1\"> only failed</label>\
         <label><input type=\"checkbox\" name=\"force\" value=\"1\"> force</label>\
         <button type=\"submit\" id=\"backfill\">Backfill</button></form></section>",
        esc(&href)
    )
}

/// `POST /assets/{asset}/materialize`: starts the materialization in the background and goes
/// to the partition's page, where its record appears.
pub(crate) async fn materialize(
    State(state): State<AppState>,
    Path(name): Path<String>,
    action: Action,
) -> UiResult<Redirect> {
    let asset = find_asset(&state, &name)?;
    let partition = parse_partition(&asset, action.field("partition").unwrap_or("-"))
        .map_err(|e| UiError::bad_request(e.message().to_owned()))?;
    let run = if partition == Partition::Unpartitioned {
        Run::unpartitioned()
    } else {
        Run::partition(partition.clone())
    };
    let fs = state.fs.clone();
    let asset_name = asset.name().to_owned();
    tokio::spawn(async move {
        // The outcome is in the record the run writes; the log says it too.
        if let Err(err) = fs.materialize(&asset_name, run).await {
            tracing::warn!(asset = %asset_name, error = %err, "materialization started from the dashboard failed");
        }
    });
    Ok(Redirect::to(&html::partition_href(
        asset.name(),
        &partition,
    )))
}

/// How long `POST .../backfill` waits for the new backfill's record before going to the list.
const RECORD_WAIT: Duration = Duration::from_secs(3);

/// `POST /assets/{asset}/backfill`: starts a backfill of the asset over a range (or all of its
/// partitions) in this process, and goes to its page.
pub(crate) async fn backfill(
    State(state): State<AppState>,
    Path(name): Path<String>,
    action: Action,
) -> UiResult<Redirect> {
    let asset = find_asset(&state, &name)?;
    let backfill = backfill_of(&asset, &action)?;
    // Refuse a bad request here, with its message, rather than in the background task.
    state.fs.plan_backfill(&backfill)?;
    let before: Vec<_> = state
        .fs
        .backfills(20)
        .await?
        .into_iter()
        .map(|b| b.id)
        .collect();
    let fs = state.fs.clone();
    tokio::spawn(async move {
        if let Err(err) = fs.run_backfill(backfill).await {
            tracing::warn!(error = %err, "backfill started from the dashboard failed");
        }
    });
    // The record is stored as the backfill starts; find it to show its live page.
    let deadline = tokio::time::Instant::now() + RECORD_WAIT;
    while tokio::time::Instant::now() < deadline {
        let started = state
            .fs
            .backfills(20)
            .await?
            .into_iter()
            .find(|b| !before.contains(&b.id) && b.request.selection == asset.name());
        if let Some(record) = started {
            return Ok(Redirect::to(&format!("/backfills/{}", record.id)));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(Redirect::to("/backfills"))
}

/// The backfill a form asks for: the asset over `from`..`to` (either end blank: the first or
/// last partition), only failed ones or forced when ticked.
fn backfill_of(asset: &Asset, action: &Action) -> UiResult<Backfill> {
    let bad = |e: UiError| UiError::bad_request(e.message().to_owned());
    let (from, to) = (action.field("from"), action.field("to"));
    let backfill = match (asset.partitions(), from, to) {
        (Some(def), from, to) if from.is_some() || to.is_some() => {
            let all = def.partitions()?;
            let index = |input: Option<&str>, default: usize| -> UiResult<usize> {
                match input {
                    None => Ok(default),
                    Some(input) => {
                        let p = parse_partition(asset, input).map_err(bad)?;
                        all.iter().position(|q| *q == p).ok_or_else(|| {
                            UiError::bad_request(format!("partition '{input}' is not in the asset"))
                        })
                    }
                }
            };
            let (a, b) = (index(from, 0)?, index(to, all.len().saturating_sub(1))?);
            if a > b {
                return Err(UiError::bad_request(format!(
                    "the range's start '{}' comes after its end '{}'",
                    from.unwrap_or("first"),
                    to.unwrap_or("last")
                )));
            }
            match (&all[a], &all[b]) {
                (Partition::Date(x), Partition::Date(y)) => Backfill::range(*x, *y),
                _ => Backfill::partitions(all[a..=b].to_vec()),
            }
        }
        _ => Backfill::all(),
    };
    Ok(backfill
        .select(asset.name())
        .anchor(asset.name())
        .retry_failed(action.field("retry_failed").is_some())
        .force(action.field("force").is_some()))
}
