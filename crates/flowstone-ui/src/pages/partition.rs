//! `/assets/{asset}/partitions/{partition}`: a partition's materializations, its lineage up
//! and down, its stored output's metadata, and a re-run button.

use axum::extract::{Path, State};
use axum::response::Html;
use flowstone::Direction;
use flowstone::lineage::LineageEntry;
use flowstone::store::MaterializationQuery;

use super::{error_text, find_asset, parse_partition};
use crate::error::UiResult;
use crate::html::{self, esc};
use crate::state::AppState;

/// How many records and how deep a lineage the page shows.
const RECORDS: usize = 50;
const LINEAGE_DEPTH: u32 = 3;

/// `GET /assets/{asset}/partitions/{partition}`.
pub(crate) async fn page(
    State(state): State<AppState>,
    Path((name, input)): Path<(String, String)>,
) -> UiResult<Html<String>> {
    let asset = find_asset(&state, &name)?;
    let partition = parse_partition(&asset, &input)?;
    let text = partition.input_text();
    let records = state
        .fs
        .materializations(
            &MaterializationQuery::asset(asset.name())
                .partition(partition.clone())
                .limit(RECORDS),
        )
        .await?;
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|m| {
            vec![
                esc(&m.run_id.to_string()),
                html::badge(m.status.as_str()),
                m.attempt.to_string(),
                esc(&m.executor),
                esc(&html::time(m.started_at)),
                esc(&m.duration.map(html::duration).unwrap_or_else(|| "-".into())),
                format!("<span class=\"error-text\">{}</span>", esc(&error_text(m))),
            ]
        })
        .collect();
    let mut body = format!(
        "<h1><a href=\"{}\">{}</a> <span id=\"partition-key\">{}</span></h1>",
        esc(&html::asset_href(asset.name())),
        esc(asset.name()),
        esc(&text)
    );
    body.push_str(&html::section(
        "Materializations",
        &html::table(
            "materializations",
            &[
                "run", "status", "attempt", "executor", "started", "duration", "error",
            ],
            &rows,
            "never materialized",
        ),
    ));
    let metadata = state
        .fs
        .runtime()
        .storage()
        .io_of(&asset)?
        .metadata(asset.name(), &partition)
        .await?;
    let output = match metadata {
        Some(m) => html::table(
            "output",
            &["size", "stored at", "run"],
            &[vec![
                m.size_bytes
                    .map_or_else(|| "-".into(), |b| format!("{b} bytes")),
                esc(&html::time(m.stored_at)),
                esc(&m.run_id.to_string()),
            ]],
            "",
        ),
        None => String::from("<p class=\"empty\" id=\"output\">no output stored</p>"),
    };
    body.push_str(&html::section("Output", &output));
    for (direction, title, id) in [
        (Direction::Upstream, "Upstream (what it read)", "upstream"),
        (
            Direction::Downstream,
            "Downstream (what read it)",
            "downstream",
        ),
    ] {
        let entries = state
            .fs
            .lineage(asset.name(), partition.clone(), direction, LINEAGE_DEPTH)
            .await?;
        body.push_str(&html::section(title, &lineage_table(id, &entries)));
    }
    body.push_str(&format!(
        "<section><form method=\"post\" action=\"{}/materialize\">{}\
         <input type=\"hidden\" name=\"partition\" value=\"{}\">\
         <button type=\"submit\" id=\"rerun\">Re-run this partition</button></form></section>",
        esc(&html::asset_href(asset.name())),
        html::csrf_field(state.csrf()),
        esc(&text)
    ));
    Ok(html::page(&format!("{} {text}", asset.name()), "", &body))
}

fn lineage_table(id: &str, entries: &[LineageEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.depth.to_string(),
                format!(
                    "<a href=\"{}\">{} {}</a>",
                    esc(&html::partition_href(&e.key.asset, &e.key.partition)),
                    esc(&e.key.asset),
                    esc(&e.key.partition.input_text())
                ),
                esc(&e.key.run_id.to_string()),
            ]
        })
        .collect();
    html::table(
        id,
        &["depth", "materialization", "run"],
        &rows,
        "none recorded",
    )
}
