//! `/graph`: the asset graph as an SVG laid out on the server ([`crate::graph_svg`]), each
//! node coloured by its asset's newest status and linked to its page.

use axum::extract::State;
use axum::response::Html;

use super::newest_record;
use crate::error::UiResult;
use crate::graph_svg::{self, Node};
use crate::html;
use crate::state::AppState;

/// `GET /graph`.
pub(crate) async fn page(State(state): State<AppState>) -> UiResult<Html<String>> {
    let registry = state.fs.registry();
    let mut nodes = Vec::new();
    for name in registry.topological_order() {
        let asset = registry.get(name)?;
        let status = newest_record(&state, name)
            .await?
            .map_or("missing", |m| m.status.as_str());
        nodes.push(Node {
            name: name.clone(),
            status: status.to_owned(),
            upstream: asset
                .upstream_assets()
                .map(|dep| {
                    let label = asset
                        .mapping(dep)
                        .filter(|m| !m.is_identity())
                        .map(|m| m.describe());
                    (dep.to_owned(), label)
                })
                .collect(),
        });
    }
    let body = format!(
        "<h1>Asset graph</h1><div class=\"graph\">{}</div>",
        graph_svg::render(&nodes)
    );
    Ok(html::page("Asset graph", "/graph", &body))
}
